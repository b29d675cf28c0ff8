"""RFM: recency, frequency and monetary scores (1–5) and the lifecycle stage.

R comes from the days since the last purchase, F from the number of purchases, M from
the money spent in all. With at least QUINTILES_FROM repeat customers the edges are
this shop's own: R and M by quintiles of all customers, F = 1 for one purchase and
2–5 by quartiles of the repeat customers' purchases. Below that, fixed edges
(DEFAULT_*). The stage follows from the scores (stage_of).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .data import Summary

QUINTILES_FROM = 100
"""Repeat customers needed before the edges are this shop's quintiles."""

DEFAULT_RECENCY = (40.0, 90.0, 180.0, 365.0)
"""Days since the last purchase: < 40 → R5, < 90 → R4, < 180 → R3, < 365 → R2, else R1."""
DEFAULT_FREQUENCY = (1.0, 2.0, 3.0, 5.0)
"""Purchases: 1 → F1, 2 → F2, 3 → F3, 4–5 → F4, 6 or more → F5."""
DEFAULT_MONETARY = (0.5, 0.8, 1.25, 2.0)
"""Money spent, as a multiple of the median customer's: < 0.5 → M1, < 0.8 → M2,
< 1.25 → M3, < 2 → M4, else M5."""

STAGES = ("new", "active", "loyal", "champions", "at_risk", "about_to_lose", "lost")


@dataclass(frozen=True)
class Edges:
    """The edges that turn recency, purchases and money into scores.

    R: recency ≤ recency[0] → 5 … > recency[3] → 1 (quintile mode: ≤; fixed: <).
    F and M: value ≤ edge[i] scores i + 1 (M: 5 above every edge).
    """

    mode: str
    """"quintiles" or "defaults"."""
    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """The edges as the fit's record and `kanal predict show` keep them."""
        return {"mode": self.mode, "recency": list(self.recency),
                "frequency": list(self.frequency), "monetary": list(self.monetary)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edges:
        """The edges a fit recorded."""
        return cls(str(data["mode"]), tuple(data["recency"]), tuple(data["frequency"]),
                   tuple(data["monetary"]))


def edges_for(summary: Summary) -> Edges:
    """This shop's quintiles, or the fixed defaults for a shop with few repeat customers."""
    repeat = summary.purchases[summary.x > 0]
    if repeat.size < QUINTILES_FROM:
        valued = summary.historic[summary.has_value]
        median = float(np.median(valued)) if valued.size else 0.0
        return Edges("defaults", DEFAULT_RECENCY, DEFAULT_FREQUENCY,
                     tuple(m * median for m in DEFAULT_MONETARY))
    recency = np.quantile(summary.recency, [0.2, 0.4, 0.6, 0.8])
    frequency = np.quantile(repeat, [0.25, 0.5, 0.75])
    money = np.quantile(summary.historic[summary.has_value], [0.2, 0.4, 0.6, 0.8])
    return Edges("quintiles", tuple(float(v) for v in recency),
                 (1.0, *(float(v) for v in frequency)), tuple(float(v) for v in money))


def scores(summary: Summary, edges: Edges) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                                     NDArray[np.int64]]:
    """(R, F, M) of every customer; M is 0 for a customer without any order value."""
    rec = summary.recency
    if edges.mode == "quintiles":
        r = 5 - np.searchsorted(np.asarray(edges.recency), rec, side="left")
    else:
        r = 5 - np.searchsorted(np.asarray(edges.recency), rec, side="right")
    f = np.minimum(np.searchsorted(np.asarray(edges.frequency), summary.purchases,
                                   side="left") + 1, 5)
    if edges.mode == "quintiles":
        m = np.searchsorted(np.asarray(edges.monetary), summary.historic, side="left") + 1
    else:
        m = np.searchsorted(np.asarray(edges.monetary), summary.historic, side="right") + 1
    m = np.where(summary.has_value, np.minimum(m, 5), 0)
    return r.astype(np.int64), f.astype(np.int64), m.astype(np.int64)


def stage_of(r: int, f: int, m: int, purchases: int) -> str:
    """The lifecycle stage of one customer from their scores.

    R1 lost, R2 about to lose, R3 at risk; recent customers (R4–5) are new (one
    purchase), champions (R5, F4+, M4+), loyal (F4+) or else active.
    """
    if r <= 1:
        return "lost"
    if r == 2:
        return "about_to_lose"
    if r == 3:
        return "at_risk"
    if purchases <= 1:
        return "new"
    if r == 5 and f >= 4 and m >= 4:
        return "champions"
    if f >= 4:
        return "loyal"
    return "active"


def stages(summary: Summary, r: NDArray[np.int64], f: NDArray[np.int64],
           m: NDArray[np.int64]) -> list[str]:
    """The stage of every customer."""
    purchases = summary.purchases
    return [stage_of(int(r[i]), int(f[i]), int(m[i]), int(purchases[i]))
            for i in range(len(summary))]
