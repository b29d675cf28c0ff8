"""Helpers for the products tests: a real log with the products step, products, orders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from profiles_util import Log

from kanal_collector.clock import FakeClock
from kanal_collector.products import ProductSettings, ProductsStep, SignalsWorker
from kanal_collector.products.build import build
from kanal_collector.products.importer import import_rows
from kanal_collector.products.recommend import Filters, Recommendations, recommend
from kanal_collector.profiles.step import ProfilesStep, SegmentsStep
from kanal_collector.workers import Processor, StatsStep

NOW = 1_790_000_000  # seconds
DAY_MS = 86_400_000


def product(pid: str, **fields: Any) -> dict[str, Any]:
    """A product record with an image, a price in EUR and a category."""
    out: dict[str, Any] = {"id": pid, "title": f"Product {pid}", "price": "10.00 EUR",
                           "link": f"https://shop.example/p/{pid}",
                           "image_link": f"https://shop.example/img/{pid}.jpg",
                           "product_type": "Home > Kitchen"}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not None}


class Shop:
    """A log whose processor runs the products step, on a fake clock."""

    def __init__(self, tmp: Path, settings: ProductSettings | None = None) -> None:
        self.settings = settings or ProductSettings(default_currency="EUR")
        self.clock = FakeClock(NOW)
        self.log = Log(tmp / "kanal.db", self.clock)
        self.log.processor = Processor(
            self.log.db, [StatsStep(), ProfilesStep(), SegmentsStep(self.clock),
                          ProductsStep(self.settings)], batch_size=50)
        self.signals = SignalsWorker(self.log.db, self.clock, self.settings)

    @property
    def conn(self) -> Any:
        return self.log.conn

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def products(self, *records: dict[str, Any], source: str = "test") -> Any:
        """Import records (as a feed would) at the clock's now."""
        return import_rows(self.conn, list(enumerate(records, start=1)), source=source,
                           now=self.now_ms(), default_currency=self.settings.default_currency)

    def person(self, user_id: str, **traits: Any) -> int:
        return self.log.person(user_id, self.now_ms(), **traits)

    def track(self, user_id: str, event: str, *, trusted: bool = True, ago_ms: int = 0,
              **properties: Any) -> None:
        at = self.now_ms() - ago_ms
        self.log.add("track", event=event, user_id=user_id, trusted=trusted,
                     properties=properties, ts=at, received=self.now_ms())

    def order(self, user_id: str, order_id: str, *items: str | tuple[str, float],
              ago_ms: int = 0) -> None:
        products = []
        for item in items:
            pid, price = item if isinstance(item, tuple) else (item, 10.0)
            products.append({"product_id": pid, "price": price, "quantity": 1})
        self.track(user_id, "Order Completed", ago_ms=ago_ms, order_id=order_id,
                   products=products, currency="EUR")

    def process(self) -> int:
        return self.log.process()

    def build(self) -> Any:
        return build(self.conn, self.settings, self.now_ms())

    def recommend(self, user_id: str | None, kind: str = "personal", n: int = 4,
                  products: tuple[str, ...] = (), filters: Filters | None = None,
                  currency: str | None = None) -> Recommendations:
        pid = self.log.pid(user_id) if user_id else None
        return recommend(self.conn, self.settings, now_ms=self.now_ms(), profile_id=pid,
                         kind=kind, n=n, products=products, filters=filters,
                         currency=currency)

    def signal(self) -> int:
        done = 0
        while n := self.signals.run_once():
            done += n
        self.process()
        return done

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e["event"] == name]

    def log_events(self) -> list[dict[str, Any]]:
        from kanal_collector.store.events import BODY_COLUMNS, read_body

        rows = self.conn.execute(
            f"SELECT id, event, user_id, key_kind, origin, {BODY_COLUMNS} FROM events "
            "ORDER BY id")
        return [{"id": r[0], "event": r[1], "user_id": r[2], "key_kind": r[3],
                 "origin": r[4], "body": read_body(r[5:])} for r in rows]

    def close(self) -> None:
        self.signals.close()
        self.log.close()
