"""Daily event counts by origin and type, kept by the processor for the overview.

Kanal's own events (key kind "kanal": deliveries, opens and clicks, segment entries and
exits, predictions …) are counted under the type OWN_TYPE, so the overview can show them
apart from the shop's events. Counters written before that (before wave 2) hold them
under their plain type "track".
"""

from __future__ import annotations

from collections.abc import Mapping

from .connection import Connection

OWN_TYPE = "kanal"
"""The `type` Kanal's own events are counted under."""


def add_counts(conn: Connection, counts: Mapping[tuple[str, str, str], int]) -> None:
    """Add to the (day, origin, type) counters."""
    conn.executemany(
        "INSERT INTO event_stats (day, origin, type, count) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(day, origin, type) DO UPDATE SET count = event_stats.count + excluded.count",
        [(*key, n) for key, n in counts.items()],
    )


def daily_counts(conn: Connection) -> list[tuple[str, str, str, int]]:
    """Every counter as (day, origin, type, count), oldest day first."""
    return [
        (r[0], r[1], r[2], int(r[3]))
        for r in conn.execute(
            "SELECT day, origin, type, count FROM event_stats ORDER BY day, origin, type"
        )
    ]
