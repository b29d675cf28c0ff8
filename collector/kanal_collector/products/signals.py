"""Product changes become Kanal's own per-person events: a worker reads the products'
history after its cursor and appends, in the same transaction that moves the cursor,

    Product Back in Stock   for each person waiting for it (a `Back in Stock Subscribed`
                            event), once per request: the request is then used up
    Product Price Dropped   for each person who viewed or carted it (and didn't buy
                            it) within `price_drop_window`, when its price (in a
                            currency) fell by at least `price_drop_percent` % or
                            `price_drop_amount`, and it can be bought

so journeys start per person (trigger `{event: Product Back in Stock}`). The events are
current (key_kind `kanal`, origin `server`, timestamp = now) and carry `product_id`,
`product_name`, `product_url`, and for a price drop `currency`, `old_price`,
`new_price`, `drop_amount`, `drop_percent`, `interest` ("view" or "cart"). Their
messageId names the history row and the person, so nothing is written twice.

History is not now: a change older than `signal_max_age` when the worker reaches it
(a server that was down for days) makes no event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..clock import Clock
from ..own_events import own_event
from ..store import product_activity as activity
from ..store import products as catalogue
from ..store.connection import Connection
from ..store.cursors import get_position, set_position
from ..store.db import Database, transaction
from ..store.events import EventRow, append_events
from ..store.profiles import first_source
from ..tracking.events import profile_ids
from .settings import ProductSettings

log = logging.getLogger("kanal.products")

BACK_IN_STOCK = "Product Back in Stock"
PRICE_DROPPED = "Product Price Dropped"
CURSOR = "products.signals"
_BATCH = 200


def price_drop(row: catalogue.HistoryRow, settings: ProductSettings) -> bool:
    """True when a price history row is a drop big enough to tell people about."""
    if row.what != "price" or row.old_price is None or row.new_price is None:
        return False
    drop = row.old_price - row.new_price
    if drop <= 0:
        return False
    percent = 100.0 * drop / row.old_price if row.old_price > 0 else 0.0
    by_percent = settings.price_drop_percent is not None and \
        percent + 1e-9 >= settings.price_drop_percent
    by_amount = settings.price_drop_amount is not None and \
        drop + 1e-9 >= settings.price_drop_amount
    return by_percent or by_amount


def back_in_stock(row: catalogue.HistoryRow) -> bool:
    """True when a history row makes a product orderable again."""
    if row.what not in ("availability", "restored"):
        return False
    return row.new_availability not in (None, "out_of_stock", "deleted") and \
        row.old_availability in ("out_of_stock", "deleted")


def _event(conn: Connection, name: str, row: catalogue.HistoryRow, profile_id: int,
           properties: Mapping[str, Any], *, source: int, now_ms: int) -> EventRow:
    current, user_id, anonymous_id = profile_ids(conn, profile_id)
    if user_id is None and anonymous_id is None:
        anonymous_id = f"kanal-profile-{current}"
    return own_event(name=name, message_id=f"kanal-product-{row.id}-{current}",
                     origin="server", properties={**properties, "profile_id": current},
                     user_id=user_id, anonymous_id=anonymous_id, source_id=source,
                     now_ms=now_ms)


def signal(conn: Connection, row: catalogue.HistoryRow, settings: ProductSettings,
           now_ms: int) -> list[EventRow]:
    """The events one history row makes (in the caller's transaction)."""
    is_back, is_drop = back_in_stock(row), price_drop(row, settings)
    if not (is_back or is_drop):
        return []
    if now_ms - row.at > settings.signal_max_age_ms:
        log.info("product %s: %s of %d is too old to tell anyone", row.product_id, row.what,
                 row.at)
        return []
    source = first_source(conn)
    product = catalogue.load_products(conn, [row.product_id]).get(row.product_id)
    if source is None or product is None or product.get("deleted_at") is not None \
            or not product["in_stock"]:
        return []
    base = {"product_id": row.product_id, "product_name": product["name"],
            "product_url": product.get("url")}
    out: list[EventRow] = []
    if is_back:
        people = activity.waiting_alerts(conn, row.product_id)
        out += [_event(conn, BACK_IN_STOCK, row, pid, base, source=source, now_ms=now_ms)
                for pid in people]
        activity.mark_notified(conn, row.product_id, people, now_ms)
    if is_drop:
        assert row.old_price is not None and row.new_price is not None
        drop = round(row.old_price - row.new_price, 6)
        props = {**base, "currency": row.currency, "old_price": row.old_price,
                 "new_price": row.new_price, "drop_amount": drop,
                 "drop_percent": round(100.0 * drop / row.old_price, 2)
                 if row.old_price else 0.0}
        since = now_ms - settings.price_drop_window_ms
        bought = activity.buyers_of(conn, row.product_id, since)
        for pid, interest in activity.interested_profiles(conn, row.product_id,
                                                          since).items():
            if pid in bought:
                continue  # they have it already
            out.append(_event(conn, PRICE_DROPPED, row, pid, {**props, "interest": interest},
                              source=source, now_ms=now_ms))
    return out


class SignalsWorker:
    """Turns new product history into per-person events (a Worker)."""

    name = "product-signals"

    def __init__(self, db: Database, clock: Clock, settings: ProductSettings,
                 wake: Any = None) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.wake = wake
        self._conn: Connection | None = None

    def run_once(self) -> int:
        """Handle the next history rows; returns how many."""
        if self._conn is None:
            self._conn = self.db.connect()
        now_ms = int(self.clock.now() * 1000)
        written = 0
        # Look before taking the write lock: most polls find nothing new.
        if not catalogue.history_after(self._conn, get_position(self._conn, CURSOR), 1):
            return 0
        with transaction(self._conn) as conn:
            rows = catalogue.history_after(conn, get_position(conn, CURSOR), _BATCH)
            if not rows:
                return 0
            for row in rows:
                written += append_events(conn, signal(conn, row, self.settings, now_ms))
            assert rows[-1].id is not None
            set_position(conn, CURSOR, rows[-1].id)
        if written and self.wake is not None:
            self.wake.set()  # the processor: journeys start at once
        return len(rows)

    def close(self) -> None:
        """Close the worker's connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
