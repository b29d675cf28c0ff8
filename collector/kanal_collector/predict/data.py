"""Customers as the models see them: purchase days and their values, from profiles.

Orders are read from the profile state, so they follow the profile's rules (money.py):
the same order (order id) twice is one order, and its value is `revenue`, else `total`,
else `value`, else the sum of its products. The profile keeps 0 for an order that names
no amount ("NaN", infinities, nothing at all), so a value of 0 is no money here: the
order counts as a purchase, its value does not (the spend model needs positive amounts,
and an order sent without its value must not pull a customer's average down).

As in the data of the papers the models come from, a customer's orders on one calendar
day (UTC) are one *purchase* whose value is the sum of that day's order values; time is
counted in whole days. A customer's first purchase starts their history and is not a
repeat purchase.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Customer:
    """One customer's purchases: distinct UTC days, ascending, and each day's value
    (None when none of that day's orders had a value)."""

    profile_id: int
    days: tuple[int, ...]
    values: tuple[float | None, ...]
    orders: int
    """Orders as the profile counts them (several may share a day)."""


def customer_from_state(profile_id: int, state: Mapping[str, Any]) -> Customer | None:
    """The customer of a profile state, or None when the person never ordered."""
    orders = state.get("orders")
    if not isinstance(orders, Mapping) or not orders:
        return None
    by_day: dict[int, float | None] = {}
    for entry in orders.values():
        value, ts = entry[0], entry[1]
        day = int(ts) // DAY_MS
        money = (float(value) if isinstance(value, int | float) and not isinstance(value, bool)
                 and math.isfinite(value) and value != 0 else None)
        if day not in by_day or by_day[day] is None:
            by_day[day] = money
        elif money is not None:
            by_day[day] = (by_day[day] or 0.0) + money
    days = tuple(sorted(by_day))
    return Customer(profile_id, days, tuple(by_day[d] for d in days), len(orders))


def customers_from_transactions(
        rows: Iterable[tuple[Any, int, float | None]]) -> list[Customer]:
    """Customers from (customer key, UTC day, value) rows (for data outside Kanal, such
    as a published data set); customers are numbered in order of first appearance."""
    by_key: dict[Any, dict[int, float | None]] = {}
    counts: dict[Any, int] = {}
    for key, day, value in rows:
        days = by_key.setdefault(key, {})
        counts[key] = counts.get(key, 0) + 1
        money = value if value is not None and math.isfinite(value) else None
        if day not in days or days[day] is None:
            days[day] = money
        elif money is not None:
            days[day] = (days[day] or 0.0) + money
    out = []
    for number, (key, days) in enumerate(by_key.items(), start=1):
        ordered = tuple(sorted(days))
        out.append(Customer(number, ordered, tuple(days[d] for d in ordered), counts[key]))
    return out


@dataclass(frozen=True)
class Summary:
    """Customers summarised at a day (`as_of`, included), one array entry each, in days.

    x: repeat purchases; t_x: day of the last purchase after the first; T: days from the
    first purchase to `as_of`; recency: days since the last purchase; purchases: x + 1;
    orders: orders as the profile counts them; historic: the value of every purchase;
    valued: repeat purchases with a value, and repeat_mean their average (NaN without).
    """

    as_of: int
    profile_id: NDArray[np.int64]
    first_day: NDArray[np.int64]
    last_day: NDArray[np.int64]
    x: NDArray[np.float64]
    t_x: NDArray[np.float64]
    T: NDArray[np.float64]
    orders: NDArray[np.int64]
    historic: NDArray[np.float64]
    has_value: NDArray[np.bool_]
    valued: NDArray[np.float64]
    repeat_mean: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.profile_id.size)

    @property
    def recency(self) -> NDArray[np.float64]:
        """Days since the last purchase."""
        return np.asarray(self.as_of - self.last_day, dtype=np.float64)

    @property
    def purchases(self) -> NDArray[np.float64]:
        """Purchase days (the first one included)."""
        return self.x + 1.0

    def take(self, index: NDArray[Any]) -> Summary:
        """The customers at `index` (a mask or positions)."""
        return Summary(self.as_of, *(getattr(self, name)[index] for name in _FIELDS))


_FIELDS = ("profile_id", "first_day", "last_day", "x", "t_x", "T", "orders", "historic",
           "has_value", "valued", "repeat_mean")


def summarize(customers: Sequence[Customer], as_of: int) -> Summary:
    """Every customer whose first purchase is on or before day `as_of`, with only the
    purchases up to it (a calibration period ends there)."""
    rows: list[tuple[int, int, int, int, int, float, bool, int, float]] = []
    for c in customers:
        if not c.days or c.days[0] > as_of:
            continue
        cut = len(c.days)
        if c.days[-1] > as_of:
            cut = next(i for i, d in enumerate(c.days) if d > as_of)
        days, values = c.days[:cut], c.values[:cut]
        repeat = [v for v in values[1:] if v is not None]
        money = [v for v in values if v is not None]
        orders = c.orders if cut == len(c.days) else cut
        rows.append((c.profile_id, days[0], days[-1], len(days) - 1, orders,
                     float(sum(money)), bool(money), len(repeat),
                     float(sum(repeat) / len(repeat)) if repeat else math.nan))
    if not rows:
        empty_i = np.zeros(0, dtype=np.int64)
        empty_f = np.zeros(0, dtype=np.float64)
        return Summary(as_of, empty_i, empty_i, empty_i, empty_f, empty_f, empty_f, empty_i,
                       empty_f, np.zeros(0, dtype=bool), empty_f, empty_f)
    columns = list(zip(*rows, strict=True))
    first_a = np.array(columns[1], dtype=np.int64)
    last_a = np.array(columns[2], dtype=np.int64)
    return Summary(
        as_of=as_of, profile_id=np.array(columns[0], dtype=np.int64), first_day=first_a,
        last_day=last_a, x=np.array(columns[3], dtype=np.float64),
        t_x=(last_a - first_a).astype(np.float64), T=(as_of - first_a).astype(np.float64),
        orders=np.array(columns[4], dtype=np.int64),
        historic=np.array(columns[5], dtype=np.float64),
        has_value=np.array(columns[6], dtype=bool),
        valued=np.array(columns[7], dtype=np.float64),
        repeat_mean=np.array(columns[8], dtype=np.float64))


def holdout_purchases(customers: Sequence[Customer], start: int, end: int,
                      profile_ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """Purchase days in (start, end] of each customer of `profile_ids` (calibration)."""
    counts = {c.profile_id: sum(1 for d in c.days if start < d <= end) for c in customers}
    return np.array([counts.get(int(p), 0) for p in profile_ids], dtype=np.float64)
