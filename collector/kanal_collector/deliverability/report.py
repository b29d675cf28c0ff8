"""Bounce and complaint rates per day, channel, journey and recipient domain.

Read from `email_daily`, which the dispatcher (a sent email) and feedback.record (a
bounce or complaint) keep up to date, so the report reads a few rows per day whatever
the size of the outbox. A bounce or complaint counts on the day its email was sent, so
a day's rate is the share of that day's email that bounced or was reported (a rate never
exceeds 100 %, and a day's figure can still grow while late reports arrive).

    bounce_rate    = (hard + soft) / sent
    complaint_rate = complaints / sent      (Gmail calls it the spam rate)

Thresholds drawn on the chart are what mailbox providers and sending services publish
(sources in THRESHOLDS).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from ..store import deliverability as store
from ..store.connection import Connection

THRESHOLDS: tuple[dict[str, Any], ...] = (
    {"metric": "complaint_rate", "value": 0.003,
     "label": "Gmail: never reach a 0.3% spam rate",
     "source": "https://support.google.com/a/answer/81126"},
    {"metric": "complaint_rate", "value": 0.001,
     "label": "Gmail: keep the spam rate below 0.1%",
     "source": "https://support.google.com/a/answer/81126"},
    {"metric": "bounce_rate", "value": 0.05,
     "label": "Amazon SES reviews a sender at a 5% bounce rate",
     "source": "https://docs.aws.amazon.com/ses/latest/dg/faqs-enforcement.html"},
)
"""Published limits: Gmail's email sender guidelines (spam rate reported in Postmaster
Tools) and Amazon SES's enforcement FAQ (bounce rate)."""
DIMENSIONS = ("channel", "journey", "domain")


def _rates(counts: dict[str, int]) -> dict[str, Any]:
    sent = counts["sent"]
    bounces = counts["hard"] + counts["soft"]
    return {**counts, "bounces": bounces,
            "bounce_rate": bounces / sent if sent else None,
            "complaint_rate": counts["complaints"] / sent if sent else None}


def _empty() -> dict[str, int]:
    return dict.fromkeys(store.COUNTS, 0)


def _day_name(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def deliverability_report(conn: Connection, *, since_ms: int,
                          until_ms: int) -> dict[str, Any]:
    """The report document of a window [since, until) (whole UTC days it touches)."""
    first = store.day_of(since_ms)
    last = store.day_of(max(since_ms, until_ms - 1))
    days: dict[int, dict[str, int]] = {d: _empty() for d in range(first, last + 1)}
    groups: dict[str, dict[str, dict[str, int]]] = {d: defaultdict(_empty)
                                                   for d in DIMENSIONS}
    totals = _empty()
    for day, channel, journey, domain, *values in store.daily_rows(conn, first, last + 1):
        counts = dict(zip(store.COUNTS, values, strict=True))
        for name, n in counts.items():
            days[day][name] += n
            totals[name] += n
            for dimension, key in (("channel", channel), ("journey", journey or "(none)"),
                                   ("domain", domain or "(none)")):
                groups[dimension][key][name] += n

    def ranked(dimension: str) -> list[dict[str, Any]]:
        rows = [{"key": key, **_rates(c)} for key, c in groups[dimension].items()]
        return sorted(rows, key=lambda r: (-r["sent"], r["key"]))

    return {
        "since": since_ms, "until": until_ms,
        "thresholds": [dict(t) for t in THRESHOLDS],
        "totals": _rates(totals),
        "days": [{"day": _day_name(d), **_rates(c)} for d, c in sorted(days.items())],
        **{f"by_{d}": ranked(d) for d in DIMENSIONS},
        "suppressions": store.count_suppressions(conn),
    }
