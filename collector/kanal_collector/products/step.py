"""The processor step of products: what people do with products, in the processor's
transaction (after the profiles step, so every event already points at its profile).

    Product Viewed              a view of `product_id` (or `sku`)
    Product Added               a cart add
    Order Completed             one order line per product of `products` (an order
                                counted once by `order_id`), credited to the person's last
                                click on a recommendation of that product within
                                `attribution_window`
    Back in Stock Subscribed    the person asks to be told when `product_id` is back
    Back in Stock Unsubscribed  … and no longer does
    Email Link Clicked          Kanal's own click event: a click on a recommendation link

Events flagged `properties.bot = true` never count. These events only ever *read*
the catalogue (an unknown product id is kept as the shop sent it); products are written
by feeds, imports and the admin API alone. An event's time is its timestamp, but never
later than when Kanal received it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..profiles.state import ORDER_EVENTS
from ..profiles.step import KANAL_KEY_KIND
from ..store import product_activity as activity
from ..store import products as catalogue
from ..store.connection import Connection
from ..store.events import StoredEvent
from ..store.journeys import profiles_of_events
from .record import MAX_ID
from .settings import ProductSettings

VIEWED = "Product Viewed"
ADDED = "Product Added"
SUBSCRIBE = "Back in Stock Subscribed"
UNSUBSCRIBE = "Back in Stock Unsubscribed"
CLICKED = "Email Link Clicked"
_PEOPLE_EVENTS = frozenset({VIEWED, ADDED, SUBSCRIBE, UNSUBSCRIBE, *ORDER_EVENTS})


def _props(event: StoredEvent) -> dict[str, Any]:
    props = event.body.get("properties")
    return props if isinstance(props, dict) else {}


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if text and len(text) <= MAX_ID else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def product_ref(props: Mapping[str, Any], skus: Mapping[str, str]) -> str | None:
    """The product an event's properties (or one of its `products`) name: `product_id`,
    else the product with that `sku`, else the sku itself."""
    pid = _id(props.get("product_id"))
    if pid:
        return pid
    sku = _id(props.get("sku"))
    return skus.get(sku, sku) if sku else None


def order_key(event: StoredEvent, props: Mapping[str, Any]) -> str:
    """An order's identity: its order_id (the profiles' rule), else the event itself."""
    key = props.get("order_id") or props.get("orderId") or props.get("checkout_id")
    if isinstance(key, str | int) and not isinstance(key, bool) and str(key):
        return f"o:{key}"
    return f"m:{event.id}"


class ProductsStep:
    """Keeps product activity, order lines, back-in-stock requests and recommendation
    clicks and conversions current (see the module docstring)."""

    name = "products"

    def __init__(self, settings: ProductSettings | None = None) -> None:
        self.settings = settings or ProductSettings()

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Apply a batch (inside the processor's transaction)."""
        wanted = [e for e in events if e.type == "track" and not _is_bot(e) and (
            (e.event in _PEOPLE_EVENTS and e.key_kind != KANAL_KEY_KIND)
            or (e.event == CLICKED and e.key_kind == KANAL_KEY_KIND))]
        if not wanted:
            return
        owners = profiles_of_events(conn, [e.id for e in wanted])
        skus = catalogue.ids_by_sku(conn, _skus(wanted))
        # Views and cart adds add up in any order: written together at the end, in key
        # order (on a big database each is a page of its own).
        seen: list[tuple[int, str, str, int]] = []
        for event in wanted:
            pid = owners.get(event.id)
            if pid is None:
                continue
            at = min(event.timestamp, event.received_at)
            props = _props(event)
            name = event.event
            if name == CLICKED:
                self._click(conn, pid, event, props, at)
            elif name in ORDER_EVENTS:
                self._order(conn, pid, event, props, skus, at)
            elif (ref := product_ref(props, skus)) is None:
                continue
            elif name == VIEWED:
                seen.append((pid, "view", ref, at))
            elif name == ADDED:
                seen.append((pid, "cart", ref, at))
            elif name == SUBSCRIBE and self._may_subscribe(event):
                activity.add_alert(conn, pid, ref, at)
            elif name == UNSUBSCRIBE:
                activity.remove_alert(conn, pid, ref)
        activity.record_activity(conn, seen)

    def _may_subscribe(self, event: StoredEvent) -> bool:
        if self.settings.back_in_stock_from == "any":
            return True
        return event.key_kind in ("secret", "import") or event.verified

    def _click(self, conn: Connection, pid: int, event: StoredEvent,
               props: Mapping[str, Any], at: int) -> None:
        outbox_id, url = props.get("outbox_id"), props.get("link_url")
        if not isinstance(outbox_id, int) or isinstance(outbox_id, bool) or \
                not isinstance(url, str):
            return
        link = activity.rec_link(conn, outbox_id, url)
        if link is not None:
            activity.add_rec_click(conn, profile_id=pid, link=link, event_id=event.id,
                                   at=event.received_at)

    def _order(self, conn: Connection, pid: int, event: StoredEvent,
               props: Mapping[str, Any], skus: Mapping[str, str], at: int) -> None:
        items = props.get("products")
        if not isinstance(items, list):
            return
        key = order_key(event, props)
        lines: dict[str, activity.OrderLine] = {}
        currency = props.get("currency") if isinstance(props.get("currency"), str) else None
        for item in items:
            if not isinstance(item, Mapping) or (ref := product_ref(item, skus)) is None:
                continue
            quantity = _number(item.get("quantity"))
            price = _number(item.get("price"))
            if ref in lines:  # the same product twice in one order: one line
                old = lines[ref]
                lines[ref] = activity.OrderLine(key, ref, pid, at,
                                                old.quantity + (quantity or 1), old.price,
                                                currency)
                continue
            lines[ref] = activity.OrderLine(key, ref, pid, at, quantity or 1.0, price,
                                            currency)
        for line in activity.add_order_lines(conn, list(lines.values())):
            self._credit(conn, line)

    def _credit(self, conn: Connection, line: activity.OrderLine) -> None:
        click = activity.last_rec_click(conn, line.profile_id, line.product_id,
                                        line.at - self.settings.attribution_ms, line.at)
        if click is None:
            return
        kind, message, journey, outbox_id, clicked_at = click
        revenue = round((line.price or 0.0) * line.quantity, 2)
        activity.add_rec_conversion(conn, line, kind=kind, message=message, journey=journey,
                                    outbox_id=outbox_id, clicked_at=clicked_at,
                                    revenue=revenue)


def _skus(events: Sequence[StoredEvent]) -> set[str]:
    out: set[str] = set()
    for event in events:
        props = _props(event)
        items = props.get("products") if event.event in ORDER_EVENTS else [props]
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping) and not _id(item.get("product_id")):
                sku = _id(item.get("sku"))
                if sku:
                    out.add(sku)
    return out


def _is_bot(event: StoredEvent) -> bool:
    props = event.body.get("properties")
    return isinstance(props, dict) and props.get("bot") is True
