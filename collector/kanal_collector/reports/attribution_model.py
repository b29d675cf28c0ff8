"""What attribution is set to: the models, the settings, and what a report found.

Shared by the report that reads the log (attribution.py) and the credits the processor
keeps (credits.py). The settings' `fingerprint` names what the kept credits were built
with: credits kept under other settings are rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..errors import ConfigError
from .touchpoints import url_host
from .window import WindowError, parse_duration

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
DAY_MS = 86_400_000
_SETTINGS_KEYS = ("goal_events", "lookback", "half_life", "ignore_referrers")


def _host(value: str) -> str:
    """`paypal.com`, `www.PayPal.com` or `https://paypal.com/x` → `paypal.com`."""
    text = value.strip().lower()
    return url_host(text) if "://" in text else text.removeprefix("www.").rstrip(".")


@dataclass(frozen=True)
class AttributionSettings:
    """What counts as a conversion and how far back its touchpoints reach."""

    goal_events: tuple[str, ...] = ("Order Completed",)
    lookback_ms: int = 30 * DAY_MS
    half_life_ms: int = 7 * DAY_MS
    ignore_referrers: tuple[str, ...] = ()
    """Referrer hosts (and their subdomains) that are no touchpoint: payment providers,
    the shop's own other domains."""

    def __post_init__(self) -> None:
        goals = self.goal_events
        if (isinstance(goals, str) or not goals
                or not all(isinstance(g, str) and g.strip() for g in goals)):
            raise ValueError("goal_events must be a non-empty list of event names")
        for name in ("lookback_ms", "half_life_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive whole number of milliseconds, "
                                 f"not {value!r}")
        if isinstance(self.ignore_referrers, str) or not all(
                isinstance(h, str) and h.strip() for h in self.ignore_referrers):
            raise ValueError("ignore_referrers must be a list of host names")
        object.__setattr__(self, "goal_events", tuple(goals))
        object.__setattr__(self, "ignore_referrers",
                           tuple(_host(h) for h in self.ignore_referrers))

    @classmethod
    def from_config(cls, config: Config) -> AttributionSettings:
        """Read `[attribution]` (goal_events, lookback = "30d", half_life = "7d",
        ignore_referrers); ConfigError naming the bad key."""
        table = config.section("attribution")
        unknown = sorted(set(table) - set(_SETTINGS_KEYS))
        if unknown:
            raise ConfigError(f"attribution.{unknown[0]} is not a setting; use "
                              f"{', '.join(_SETTINGS_KEYS)}")
        changes: dict[str, Any] = {}
        for key in ("goal_events", "ignore_referrers"):
            if key in table:
                value = table[key]
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(
                        isinstance(v, str) and v.strip() for v in value):
                    raise ConfigError(f"attribution.{key} must be a list of names, "
                                      f"not {value!r}")
                changes[key] = tuple(v.strip() for v in value)
        for key in ("lookback", "half_life"):
            if key in table:
                value = table[key]
                try:
                    if not isinstance(value, str):
                        raise WindowError(key, f"{value!r} is not a duration; use e.g. "
                                               "12h, 30d or 2w")
                    changes[f"{key}_ms"] = parse_duration(value, param=key)
                except WindowError as exc:
                    raise ConfigError(f"attribution.{exc}") from None
        try:
            return cls(**changes)
        except ValueError as exc:
            raise ConfigError(f"attribution: {exc}") from None


@dataclass
class Attribution:
    """What the pass found, unrounded (attribution_report rounds it for display)."""

    conversions: int = 0
    revenue: float = 0.0
    touchpoints: int = 0
    """Distinct touchpoints credited for at least one conversion."""
    unattributed_conversions: int = 0
    unattributed_revenue: float = 0.0
    credit: dict[str, dict[str, dict[str, tuple[float, float]]]] = field(default_factory=dict)
    """model → dimension → key → (conversions credited, revenue credited)."""
    source: str = "log"
    """Where it came from: "kept" (the processor's credits) or "log" (read from the log)."""


def check_models(models: Sequence[str]) -> tuple[str, ...]:
    if isinstance(models, str):
        raise ValueError("models must be a list of model names, not a string")
    chosen = tuple(dict.fromkeys(models))
    unknown = [m for m in chosen if m not in MODELS]
    if unknown or not chosen:
        raise ValueError(f"models: unknown model {', '.join(map(repr, unknown)) or '(none)'}"
                         f"; choose from {', '.join(MODELS)}")
    return chosen


CREDITS_VERSION = 1
"""Bumped when what makes a touchpoint or a conversion changes: kept credits rebuild."""


def fingerprint(settings: AttributionSettings) -> str:
    """The settings kept credits were built with, as a short text."""
    text = json.dumps([CREDITS_VERSION, list(settings.goal_events), settings.lookback_ms,
                       settings.half_life_ms, sorted(settings.ignore_referrers)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]
