"""Marketing costs per channel, campaign or journey, for ROAS in the attribution report.

Costs come from two places: kanal.toml (read at report time)

    [costs]
    currency = "EUR"            # optional, shown with every cost of the file
    [costs.channel]
    sms = 120.0
    [costs.campaign]
    spring_sale = 500
    [costs.journey]
    win_back = 50

and the admin API (stored in the `costs` table). A cost set through the API overrides
the file's cost of the same dimension and key. Channel keys are lower-case, like the
report's channel keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..store import costs as store
from ..store.connection import Connection
from ..store.db import transaction
from .touchpoints import DIMENSIONS

MAX_KEY_LENGTH = 200


def check_dimension(dimension: Any) -> str:
    """The dimension, or ValueError naming the allowed ones."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}, "
                         f"not {dimension!r}")
    return str(dimension)


def check_key(dimension: str, key: Any) -> str:
    """A key as the report shows it (stripped; lower-case for a channel), or ValueError."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"key must be a non-empty {dimension} name, not {key!r}")
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"key must be at most {MAX_KEY_LENGTH} characters")
    return key.lower() if dimension == "channel" else key


def check_amount(amount: Any) -> float:
    """A finite amount ≥ 0, or ValueError."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ValueError(f"amount must be a number, not {amount!r}")
    value = float(amount)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"amount must be a finite number of at least 0, not {amount!r}")
    return value


def check_currency(currency: Any) -> str | None:
    """None, or a three-letter currency code in upper case (ValueError otherwise)."""
    if currency is None:
        return None
    if (not isinstance(currency, str) or len(currency.strip()) != 3
            or not currency.strip().isascii() or not currency.strip().isalpha()):
        raise ValueError(f"currency must be a three-letter code such as EUR, not {currency!r}")
    return currency.strip().upper()


def set_cost(conn: Connection, dimension: str, key: str, amount: float,
             currency: str | None, now_ms: int) -> None:
    """Set (or replace) the cost of one channel, campaign or journey, in its own write
    transaction; ValueError on a bad dimension, key, amount or currency."""
    dimension = check_dimension(dimension)
    key = check_key(dimension, key)
    value = check_amount(amount)
    code = check_currency(currency)
    with transaction(conn):
        store.put_cost(conn, dimension, key, value, code, now_ms)


def delete_cost(conn: Connection, dimension: str, key: str) -> bool:
    """Remove a cost set through the API; True when there was one (the file's cost of
    the same key, if any, applies again). ValueError on a bad dimension or key."""
    dimension = check_dimension(dimension)
    key = check_key(dimension, key)
    with transaction(conn):
        return store.remove_cost(conn, dimension, key)


def config_costs(config: Config) -> dict[tuple[str, str], tuple[float, str | None]]:
    """The costs of kanal.toml's [costs] as (dimension, key) → (amount, currency);
    ConfigError naming the bad entry."""
    table = config.section("costs")
    try:
        currency = check_currency(table.get("currency"))
    except ValueError as exc:
        raise ConfigError(f"costs.currency: {exc}") from None
    out: dict[tuple[str, str], tuple[float, str | None]] = {}
    for name, entries in table.items():
        if name == "currency":
            continue
        if name not in DIMENSIONS:
            raise ConfigError(f"costs.{name} is not a dimension; use [costs.channel], "
                              "[costs.campaign] or [costs.journey]")
        if not isinstance(entries, Mapping):
            raise ConfigError(f"costs.{name} must be a table of name = amount")
        for key, amount in entries.items():
            try:
                out[(name, check_key(name, key))] = (check_amount(amount), currency)
            except ValueError as exc:
                raise ConfigError(f"costs.{name}.{key}: {exc}") from None
    return out


def _merged(conn: Connection, config: Config | None,
            ) -> dict[tuple[str, str], tuple[float, str | None, str]]:
    merged = {k: (amount, currency, "config")
              for k, (amount, currency) in (config_costs(config) if config else {}).items()}
    for dimension, key, amount, currency, _updated in store.all_costs(conn):
        merged[(dimension, key)] = (amount, currency, "api")
    return merged


def list_costs(conn: Connection, config: Config | None = None,
               ) -> list[dict[str, Any]]:
    """Every cost in effect: the API's, and with `config` the file's that no API cost
    overrides; `source` tells them apart. Ordered by dimension (channel, campaign,
    journey), then key."""
    order = {d: i for i, d in enumerate(DIMENSIONS)}
    return [
        {"dimension": dimension, "key": key, "amount": amount, "currency": currency,
         "source": source}
        for (dimension, key), (amount, currency, source) in sorted(
            _merged(conn, config).items(), key=lambda item: (order.get(item[0][0], 99),
                                                             item[0][1]))
    ]


def costs_for_report(conn: Connection, config: Config | None,
                     ) -> dict[tuple[str, str], float]:
    """(dimension, key) → amount for attribution_report: the file's, overridden by the
    API's."""
    return {k: amount for k, (amount, _currency, _source) in _merged(conn, config).items()}
