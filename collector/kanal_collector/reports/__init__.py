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

from .attribution import DIMENSIONS, MODELS, AttributionSettings, attribution_report
from .costs import costs_for_report, delete_cost, list_costs, set_cost
from .experiments import experiments
from .funnels import journey_funnel, journeys_summary
from .kpis import overview
from .stats import Comparison, two_proportion
from .window import WindowError, parse_duration, parse_window

__all__ = [
    "AttributionSettings",
    "Comparison",
    "DIMENSIONS",
    "MODELS",
    "WindowError",
    "attribution_report",
    "costs_for_report",
    "delete_cost",
    "experiments",
    "journey_funnel",
    "journeys_summary",
    "list_costs",
    "overview",
    "parse_duration",
    "parse_window",
    "set_cost",
    "two_proportion",
]
