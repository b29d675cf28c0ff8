"""The report documents every surface shows: the admin API answers them as JSON,
`kanal report --format json` prints them, and the dashboard draws them (and embeds them).

One function per report; each reads its settings from the config, calls the report
functions of this package and returns a JSON-ready dict, so the three surfaces can't
disagree about a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..config import Config
from ..deliverability.report import deliverability_report
from ..store import journeys as journey_store
from ..store.connection import Connection
from .attribution import MODELS, AttributionSettings, attribution_report
from .costs import costs_for_report, list_costs
from .experiments import experiments
from .funnels import journey_funnel, journeys_summary
from .kpis import overview
from .window import WindowError

MAX_OVERVIEW_DAYS = 36_600
"""The longest overview window (about a century, e.g. since 1970): one row per day."""
_DAY_MS = 86_400_000


def settings_for(config: Config, *, lookback_ms: int | None = None,
                 half_life_ms: int | None = None,
                 goal_events: Sequence[str] | None = None) -> AttributionSettings:
    """The [attribution] settings of `config`, with any of them overridden."""
    settings = AttributionSettings.from_config(config)
    changes: dict[str, Any] = {}
    if lookback_ms is not None:
        changes["lookback_ms"] = lookback_ms
    if half_life_ms is not None:
        changes["half_life_ms"] = half_life_ms
    if goal_events:
        changes["goal_events"] = tuple(goal_events)
    return replace(settings, **changes) if changes else settings


def parse_models(text: str | None) -> tuple[str, ...]:
    """`first_touch,linear` → the models; every model when empty. ValueError names `models`."""
    if not text or not text.strip():
        return MODELS
    chosen = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not chosen:
        raise ValueError(f"models: name at least one model: {', '.join(MODELS)}")
    unknown = [m for m in chosen if m not in MODELS]
    if unknown:
        raise ValueError(f"models: unknown model {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(MODELS)}")
    return chosen


def overview_view(conn: Connection, config: Config, *, since_ms: int,
                  until_ms: int) -> dict[str, Any]:
    """Events per day by origin, active profiles, conversions and revenue.

    WindowError for a window of more than MAX_OVERVIEW_DAYS days: the answer lists
    every day, so `until=9999-12-31` would be millions of rows."""
    days = -(-(until_ms - since_ms) // _DAY_MS)
    if days > MAX_OVERVIEW_DAYS:
        raise WindowError("until", f"the overview lists every day: at most "
                                   f"{MAX_OVERVIEW_DAYS} days, not {days}")
    goals = AttributionSettings.from_config(config).goal_events
    return overview(conn, since_ms=since_ms, until_ms=until_ms, goal_events=goals)


def attribution_view(conn: Connection, config: Config, *, since_ms: int,
                     until_ms: int, models: Sequence[str] = MODELS,
                     settings: AttributionSettings | None = None) -> dict[str, Any]:
    """Conversions and revenue credited by each model, with costs and ROAS."""
    return attribution_report(
        conn, since_ms=since_ms, until_ms=until_ms,
        settings=settings or AttributionSettings.from_config(config),
        models=tuple(models), costs=costs_for_report(conn, config))


def journeys_view(conn: Connection, *, since_ms: int, until_ms: int) -> dict[str, Any]:
    """Every journey's runs, sends, engagement and conversions in the window."""
    return {"since": since_ms, "until": until_ms,
            "journeys": journeys_summary(conn, since_ms=since_ms, until_ms=until_ms)}


def journey_view(conn: Connection, name: str, *, since_ms: int,
                 until_ms: int) -> dict[str, Any]:
    """One journey's funnel, step by step; LookupError for an unknown journey."""
    funnel = journey_funnel(conn, name, since_ms=since_ms, until_ms=until_ms)
    return {"since": since_ms, "until": until_ms, **funnel}


def experiments_view(conn: Connection, *, since_ms: int, until_ms: int,
                     journey: str | None = None) -> dict[str, Any]:
    """Every split test's arms against its control (of `journey`, or of all);
    LookupError for a journey Kanal doesn't know."""
    if journey is not None and journey not in {n for n, _, _ in journey_store.current(conn)}:
        raise LookupError(f"no journey named {journey!r}")
    return {"since": since_ms, "until": until_ms, "journey": journey,
            "experiments": experiments(conn, journey=journey, since_ms=since_ms,
                                       until_ms=until_ms)}


def costs_view(conn: Connection, config: Config) -> dict[str, Any]:
    """Every cost, from the API and from kanal.toml's [costs] (told apart by `source`)."""
    return {"costs": list_costs(conn, config)}


def deliverability_view(conn: Connection, *, since_ms: int,
                        until_ms: int) -> dict[str, Any]:
    """Sent email, bounce and complaint rates per day, channel, journey and recipient
    domain, with the published thresholds; WindowError for more than MAX_OVERVIEW_DAYS."""
    days = -(-(until_ms - since_ms) // _DAY_MS)
    if days > MAX_OVERVIEW_DAYS:
        raise WindowError("until", f"the report lists every day: at most "
                                   f"{MAX_OVERVIEW_DAYS} days, not {days}")
    return deliverability_report(conn, since_ms=since_ms, until_ms=until_ms)
