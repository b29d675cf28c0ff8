"""`[predict]` in kanal.toml: when to refit, how much data the models need, the currency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..products.settings import currency_code
from ..reports.window import WindowError, parse_duration

DAY_MS = 86_400_000
_KEYS = ("enabled", "refit_every", "min_customers", "min_history_days",
         "min_repeat_customers", "holdout", "currency")


@dataclass(frozen=True)
class PredictSettings:
    """What `[predict]` says (defaults when it is absent)."""

    enabled: bool = True
    """Refit on schedule inside `kanal serve` (in a process of its own)."""
    refit_every_ms: int = DAY_MS
    min_customers: int = 200
    min_history_days: int = 90
    min_repeat_customers: int = 50
    holdout_days: int = 90
    """The calibration's holdout: the last days of history, predicted from the rest."""
    currency: str = ""
    """The shop's one currency, shown with monetary values (a label: values are summed
    as the orders send them); `[products] default_currency` or `[costs] currency` when
    `[predict]` names none."""

    @classmethod
    def from_config(cls, config: Config) -> PredictSettings:
        """Read `[predict]`; ConfigError naming the bad key."""
        table = config.section("predict")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise ConfigError(f"predict.{unknown[0]} is not a setting; use {', '.join(_KEYS)}")
        values: dict[str, Any] = {}
        if "enabled" in table:
            if not isinstance(table["enabled"], bool):
                raise ConfigError(f"predict.enabled must be true or false, "
                                  f"not {table['enabled']!r}")
            values["enabled"] = table["enabled"]
        for key, field, unit in (("refit_every", "refit_every_ms", 1),
                                 ("holdout", "holdout_days", DAY_MS)):
            if key in table:
                values[field] = _duration(key, table[key], unit)
        for key in ("min_customers", "min_history_days", "min_repeat_customers"):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"predict.{key} must be a whole number ≥ 1, "
                                      f"not {value!r}")
                values[key] = value
        values["currency"] = _currency(config)
        return cls(**values)


def _currency(config: Config) -> str:
    """`[predict] currency`, else the shop's currency as `[products]` or `[costs]` name
    it ("" when none does)."""
    for table, key in (("predict", "currency"), ("products", "default_currency"),
                       ("costs", "currency")):
        value = config.section(table).get(key)
        if value is not None:
            try:
                return currency_code(value, f"{table}.{key}")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    return ""


def _duration(key: str, value: Any, unit: int) -> int:
    try:
        if not isinstance(value, str):
            raise WindowError(key, f"{value!r} is not a duration; use e.g. 12h, 1d or 2w")
        ms = parse_duration(value, param=key)
    except WindowError as exc:
        raise ConfigError(f"predict.{exc}") from None
    if ms % unit or ms < unit:
        raise ConfigError(f"predict.{key} must be a whole number of days, not {value!r}")
    return ms // unit
