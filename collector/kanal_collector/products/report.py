"""What each recommendation kind earns: shown, clicked, bought, revenue.

A recommendation is *shown* when a sent message carried a link to it, *clicked* when the
person clicked that tracked link (bots left out), and *converted* when the person bought
the product within `attribution_window` (7 days) of their last such click: the order
line counts for the kind and message of that click (last click wins), once per order
and product, however often the order is sent. `product` is the kind of the product a
message names itself (`product(id)`), beside the recommendations.
"""

from __future__ import annotations

from typing import Any

from ..store import product_activity as activity
from ..store.connection import Connection


def _rates(row: dict[str, Any]) -> dict[str, Any]:
    shown, clicks = row["shown"], row["clicks"]
    row["click_rate"] = round(clicks / shown, 4) if shown else None
    row["conversion_rate"] = round(row["conversions"] / clicks, 4) if clicks else None
    row["revenue"] = round(row["revenue"], 2)
    return row


def recommendations_report(conn: Connection, *, since_ms: int,
                           until_ms: int) -> dict[str, Any]:
    """The report for [since_ms, until_ms): per kind, per kind and message, totals."""
    cells = activity.rec_report_rows(conn, since_ms, until_ms)
    kinds: dict[str, dict[str, Any]] = {}
    messages: list[dict[str, Any]] = []
    totals = {"shown": 0, "clicks": 0, "conversions": 0, "revenue": 0.0}
    for (kind, message), cell in sorted(cells.items()):
        messages.append(_rates({"kind": kind, "message": message or None, **cell}))
        total = kinds.setdefault(kind, {"kind": kind, "shown": 0, "clicks": 0,
                                        "conversions": 0, "revenue": 0.0})
        for key in totals:
            total[key] += cell[key]
            totals[key] += cell[key]
    by_revenue = sorted(kinds.values(), key=lambda r: (-r["revenue"], r["kind"]))
    return {"since": since_ms, "until": until_ms,
            "kinds": [_rates(r) for r in by_revenue],
            "messages": sorted(messages, key=lambda r: (-r["revenue"], r["kind"],
                                                         r["message"] or "")),
            "totals": _rates(dict(totals))}
