"""Money as Kanal reads it from events: what counts as an amount, and an order's value.

One small module below the store and the profiles, reports and journeys that sum money,
so that every part applies the same rule (the KPI overview's daily sums, a profile's
revenue, a journey's conversions, attribution):

- An amount is a finite number: an int or float, or a string holding a plain decimal
  number (`"12.50"`, `"-3"`, `"1e3"`). `"NaN"`, `"Infinity"`, `"-inf"`, `"0x1F"`,
  `"1_000"`, booleans and anything else are not amounts.
- An amount beyond ±10^15 is not money either: no order is worth a quadrillion, and
  capping every amount keeps every sum of them finite (a sum that overflowed to
  infinity would poison every report it joins, and no JSON can carry it).
- An order's value is its `revenue`, else `total`, else `value`, else the sum of its
  `products` (price × quantity, quantity 1 when missing); 0.0 when there is nothing.
- The same order sent twice (the same `order_id`, e.g. by the snippet and by the
  backend) is one order: the copy from a trusted source (a secret key, `kanal import`,
  Kanal itself) is the one that counts, else the first received.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_AMOUNT = 1e15
"""The largest amount (either sign) read as money."""
ORDER_FIELDS = ("revenue", "total", "value")
"""The properties that hold an order's value, in order of preference."""
ORDER_ID_FIELDS = ("order_id", "orderId", "checkout_id")
"""The properties that name an order, in order of preference."""
TRUSTED_KEY_KINDS = frozenset({"secret", "import", "kanal"})
"""Key kinds whose copy of an order counts over a copy from a browser or an app."""
_DECIMAL = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def amount(value: Any) -> float | None:
    """`value` as an amount of money, or None when it is not one (see the module)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = float(value) if abs(value) <= MAX_AMOUNT else math.inf
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and _DECIMAL.match(value.strip()):
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) and abs(number) <= MAX_AMOUNT else None


def order_revenue(properties: Mapping[str, Any]) -> float:
    """An order's value from its properties (revenue, total, value, else products)."""
    for name in ORDER_FIELDS:
        value = amount(properties.get(name))
        if value is not None:
            return value
    total = 0.0
    products = properties.get("products")
    if isinstance(products, list):
        for product in products:
            if isinstance(product, Mapping):
                price = amount(product.get("price")) or 0.0
                quantity = amount(product.get("quantity"))
                total += price * (1.0 if quantity is None else quantity)
    # Each product is bounded, their sum is not: over the bound it is not money.
    return total if abs(total) <= MAX_AMOUNT else 0.0


def order_value(properties: Any) -> float:
    """`order_revenue` of a track event's properties given as a dict or as JSON text;
    0.0 for anything else."""
    if isinstance(properties, str | bytes):
        try:
            properties = json.loads(properties)
        except ValueError:
            return 0.0
    if not isinstance(properties, dict):
        return 0.0
    return order_revenue(properties)


def order_id(properties: Mapping[str, Any]) -> str | None:
    """The order an event's properties name (order_id, orderId, checkout_id), or None."""
    for name in ORDER_ID_FIELDS:
        value = properties.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def copy_rank(key_kind: str, event_id: int) -> tuple[int, int]:
    """How a copy of an order ranks against the others (lowest counts): trusted
    sources first, then the first received."""
    return (0 if key_kind in TRUSTED_KEY_KINDS else 1, event_id)
