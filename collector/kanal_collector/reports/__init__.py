"""Reports (issue #9): attribution, journey funnels, experiments and the KPI overview.

Every function takes an open sqlite3 connection and returns JSON-ready dicts and lists;
the admin API (admin/reports.py), `kanal report` (cli_report.py) and the dashboard
(dashboard/) all show the documents of `views`, built from these functions.

    attribution.py   multi-touch attribution (five models) per channel, campaign, journey
    touchpoints.py   what counts as a touchpoint and its channel/campaign/journey
    costs.py         marketing costs (kanal.toml [costs] and the API) for ROAS
    funnels.py       journeys' totals and step-by-step funnels
    experiments.py   split tests: arms against the control
    stats.py         two-proportion comparison (z-test, Wald interval)
    kpis.py          the overview: events per day by origin, profiles, conversions, revenue
    window.py        report windows: `30d`, ISO dates → epoch-ms bounds
    views.py         the report documents every surface shows
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .attribution import DIMENSIONS, MODELS, AttributionSettings, attribution_report
    from .costs import costs_for_report, delete_cost, list_costs, set_cost
    from .funnels import journey_funnel, journeys_summary
    from .kpis import overview
    from .stats import Comparison, two_proportion
    from .window import WindowError, parse_duration, parse_window

_lazy = lazy_exports(__name__, {
    "DIMENSIONS": ".attribution",
    "MODELS": ".attribution",
    "AttributionSettings": ".attribution",
    "attribution_report": ".attribution",
    "costs_for_report": ".costs",
    "delete_cost": ".costs",
    "list_costs": ".costs",
    "set_cost": ".costs",
    "journey_funnel": ".funnels",
    "journeys_summary": ".funnels",
    "overview": ".kpis",
    "Comparison": ".stats",
    "two_proportion": ".stats",
    "WindowError": ".window",
    "parse_duration": ".window",
    "parse_window": ".window",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "AttributionSettings",
    "Comparison",
    "DIMENSIONS",
    "MODELS",
    "WindowError",
    "attribution_report",
    "costs_for_report",
    "delete_cost",
    "journey_funnel",
    "journeys_summary",
    "list_costs",
    "overview",
    "parse_duration",
    "parse_window",
    "set_cost",
    "two_proportion",
]
