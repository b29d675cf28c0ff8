"""Copies of the same order: which one every report counts.

A shop often reports one order twice — the snippet in the browser and the backend —
with the same `order_id`. `order_copies` (store/schema.py _m012) holds one row per copy
(a person's track event with an order id), written by the processor's profiles step:

    event, order_id   which order (the event's name and its order id)
    counted           1 for the copy every report counts: the first copy from a trusted
                      source (secret key, import), else the first received
    repeat            1 for every copy after the first received: journeys never see
                      these (a copy is not a new order)
    value, timestamp  the copy's order value (money.py) and event time

Reports count only `counted` copies; the KPI overview's track_daily holds only them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .connection import Connection


@dataclass(frozen=True)
class Copy:
    """One stored copy of an order."""

    event_id: int
    event: str
    order_id: str
    trusted: bool
    counted: bool
    value: float
    timestamp: int


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def counted_copies(conn: Connection,
                   keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Copy]:
    """The counted copy of each of these (event, order_id) orders that has one."""
    wanted = set(keys)
    out: dict[tuple[str, str], Copy] = {}
    names = sorted({event for event, _ in wanted})
    events = ",".join("?" * len(names))
    for chunk in _chunks(sorted({order_id for _, order_id in wanted})):
        marks = ",".join("?" * len(chunk))
        # Both columns of the index (event, order_id): by order_id alone it is a scan.
        for eid, event, order_id, trusted, value, ts in conn.execute(
                "SELECT event_id, event, order_id, trusted, value, timestamp "
                f"FROM order_copies WHERE event IN ({events}) AND order_id IN ({marks}) "
                "AND counted = 1", [*names, *chunk]):
            if (event, order_id) in wanted:
                out[(event, order_id)] = Copy(int(eid), str(event), str(order_id),
                                              bool(trusted), True, float(value), int(ts))
    return out


def add_copies(conn: Connection, copies: Sequence[tuple[Copy, bool]]) -> None:
    """Store new copies: (copy, repeat)."""
    conn.executemany(
        "INSERT INTO order_copies (event_id, event, order_id, trusted, counted, repeat, "
        "value, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (event_id) DO NOTHING",
        [(c.event_id, c.event, c.order_id, int(c.trusted), int(c.counted), int(repeat),
          c.value, c.timestamp) for c, repeat in copies])


def uncount(conn: Connection, event_ids: Iterable[int]) -> None:
    """These copies are no longer the ones counted (a trusted copy came after them)."""
    conn.executemany("UPDATE order_copies SET counted = 0 WHERE event_id = ?",
                     [(e,) for e in event_ids])


def repeats(conn: Connection, event_ids: Sequence[int]) -> set[int]:
    """Which of these events are copies of an order after its first received one."""
    out: set[int] = set()
    for chunk in _chunks(sorted(set(event_ids))):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT event_id FROM order_copies WHERE repeat = 1 AND event_id IN ({marks})",
            chunk))
    return out


def uncounted(conn: Connection, since_ms: int, until_ms: int) -> set[int]:
    """The copies no report counts, of events in [since_ms, until_ms)."""
    return {int(r[0]) for r in conn.execute(
        "SELECT event_id FROM order_copies WHERE counted = 0 AND timestamp >= ? "
        "AND timestamp < ?", (since_ms, until_ms))}


def settle_conversions(conn: Connection, event_ids: Sequence[int]) -> None:
    """Journey conversions reached on one of these copies take the value of the copy
    that is counted (the first received copy converts the run; a trusted copy that came
    later decides what the order was worth)."""
    for chunk in _chunks(sorted(set(event_ids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT first.event_id, counted.value FROM order_copies first "
            "JOIN order_copies counted ON counted.event = first.event "
            "AND counted.order_id = first.order_id AND counted.counted = 1 "
            f"WHERE first.event_id IN ({marks}) AND first.repeat = 0 "
            "AND counted.event_id != first.event_id", chunk).fetchall()
        conn.executemany("UPDATE journey_conversions SET revenue = ? WHERE event_id = ?",
                         [(float(value), int(eid)) for eid, value in rows])


def first_copies(conn: Connection, keys: Iterable[tuple[str, str]]) -> list[int]:
    """The first received copy of each of these (event, order_id) orders."""
    out = []
    for event, order_id in set(keys):
        row = conn.execute("SELECT event_id FROM order_copies WHERE event = ? "
                           "AND order_id = ? AND repeat = 0", (event, order_id)).fetchone()
        if row is not None:
            out.append(int(row[0]))
    return out


def forget_copies(conn: Connection, event_ids: Sequence[int]) -> None:
    """Drop the copies of deleted events (privacy)."""
    for chunk in _chunks(sorted(set(event_ids))):
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM order_copies WHERE event_id IN ({marks})", chunk)


def counted_flags(conn: Connection, event_ids: Sequence[int]) -> dict[int, bool]:
    """{event id: counted} of these events that are copies of an order."""
    out: dict[int, bool] = {}
    for chunk in _chunks(sorted(set(event_ids))):
        marks = ",".join("?" * len(chunk))
        out.update((int(e), bool(c)) for e, c in conn.execute(
            f"SELECT event_id, counted FROM order_copies WHERE event_id IN ({marks})", chunk))
    return out
