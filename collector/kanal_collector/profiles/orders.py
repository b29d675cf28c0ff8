"""Which copy of an order the reports count (store/orders.py explains the table).

Run by the profiles step for each batch of people's own events, in the processor's
transaction, before the batch is added to the KPI overview's daily figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..money import TRUSTED_KEY_KINDS, order_id, order_value
from ..store import orders as store
from ..store.connection import Connection
from ..store.events import StoredEvent


@dataclass
class Counted:
    """What a batch's order copies change: copies not to count, and copies counted
    until now that a trusted copy replaced (their figures leave the daily totals)."""

    skip: set[int] = field(default_factory=set)
    replaced: list[store.Copy] = field(default_factory=list)


def count_copies(conn: Connection, events: Sequence[StoredEvent]) -> Counted:
    """Record the batch's copies of orders and decide which one of each order counts."""
    copies: list[tuple[StoredEvent, tuple[str, str]]] = []
    for event in events:
        props = event.body.get("properties")
        if event.type == "track" and event.event and isinstance(props, dict):
            oid = order_id(props)
            if oid is not None:
                copies.append((event, (event.event, oid)))
    out = Counted()
    if not copies:
        return out
    counted = store.counted_copies(conn, (key for _, key in copies))
    new: dict[int, tuple[store.Copy, bool]] = {}
    switched: set[tuple[str, str]] = set()
    for event, key in sorted(copies, key=lambda c: c[0].id):
        props = event.body.get("properties")
        trusted = event.key_kind in TRUSTED_KEY_KINDS
        current = counted.get(key)
        wins = current is None or (trusted and not current.trusted)
        copy = store.Copy(event.id, key[0], key[1], trusted, wins, order_value(props),
                          event.timestamp)
        if current is not None and wins:
            switched.add(key)
            if current.event_id in new:  # counted a moment ago, in this batch
                new[current.event_id] = (_uncounted(current), new[current.event_id][1])
                out.skip.add(current.event_id)
            else:
                out.replaced.append(current)
        if not wins:
            out.skip.add(event.id)
        else:
            counted[key] = copy
        new[event.id] = (copy, current is not None)
    store.add_copies(conn, list(new.values()))
    store.uncount(conn, [c.event_id for c in out.replaced])
    # Journey conversions reached on an earlier batch's copy take the new value.
    store.settle_conversions(conn, store.first_copies(conn, switched))
    return out


def _uncounted(copy: store.Copy) -> store.Copy:
    return store.Copy(copy.event_id, copy.event, copy.order_id, copy.trusted, False,
                      copy.value, copy.timestamp)
