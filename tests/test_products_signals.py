"""What people do with products (the processor step), and product changes as their events."""

from __future__ import annotations

from pathlib import Path

from products_util import DAY_MS, Shop, product

from kanal_collector.products import ProductSettings, ProductsStep
from kanal_collector.products.signals import BACK_IN_STOCK, PRICE_DROPPED
from kanal_collector.profiles.privacy import forget
from kanal_collector.profiles.rebuild import rebuild
from kanal_collector.store import product_activity as activity


def _rows(shop: Shop, table: str) -> list[tuple[object, ...]]:
    return shop.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()


def test_views_carts_and_orders_are_kept_and_an_order_counts_once(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        shop.products(product("a"), product("b", sku="SKU-B"))
        pid = shop.person("ann")
        shop.track("ann", "Product Viewed", product_id="a")
        shop.track("ann", "Product Viewed", product_id="a", ago_ms=1000)
        shop.track("ann", "Product Added", sku="SKU-B")  # a sku names the product
        shop.order("ann", "o1", "a", ("b", 5.0))
        shop.order("ann", "o1", "a", ("b", 5.0))  # the same order sent twice
        shop.track("ann", "Product Viewed", product_id="a", bot=True)
        shop.process()
        assert activity.person_activity(shop.conn, pid, "view") == [("a", shop.now_ms())]
        assert _rows(shop, "product_activity")[1][5] == 2  # two views, not the bot's
        assert activity.person_activity(shop.conn, pid, "cart") == [("b", shop.now_ms())]
        lines = shop.conn.execute(
            "SELECT order_key, product_id, quantity, price FROM product_orders "
            "ORDER BY product_id").fetchall()
        assert lines == [("o:o1", "a", 1.0, 10.0), ("o:o1", "b", 1.0, 5.0)]
    finally:
        shop.close()


def test_back_in_stock_tells_each_waiting_person_once(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        shop.products(product("mug", availability="out of stock"))
        shop.person("ann")
        shop.person("bob")
        shop.track("ann", "Back in Stock Subscribed", product_id="mug")
        shop.track("bob", "Back in Stock Subscribed", product_id="mug")
        shop.track("bob", "Back in Stock Unsubscribed", product_id="mug")
        shop.process()
        shop.signal()
        assert shop.events(BACK_IN_STOCK) == []  # nothing changed yet
        shop.clock.advance(60)
        shop.products(product("mug"))
        shop.signal()
        events = shop.events(BACK_IN_STOCK)
        assert [(e["user_id"], e["key_kind"], e["origin"]) for e in events] == [
            ("ann", "kanal", "server")]
        props = events[0]["body"]["properties"]
        assert props["product_id"] == "mug" and props["product_name"] == "Product mug"
        assert props["product_url"] == "https://shop.example/p/mug"
        # out and in again: ann's request is used up
        shop.clock.advance(60)
        shop.products(product("mug", availability="out_of_stock"))
        shop.clock.advance(60)
        shop.products(product("mug"))
        shop.signal()
        assert len(shop.events(BACK_IN_STOCK)) == 1
        # the worker's cursor: running again writes nothing twice
        assert shop.signal() == 0
    finally:
        shop.close()


def test_price_drops_reach_people_who_looked_within_the_window(tmp_path: Path) -> None:
    shop = Shop(tmp_path, ProductSettings(default_currency="EUR", price_drop_percent=10,
                                          price_drop_window_ms=14 * DAY_MS))
    try:
        shop.products(product("lamp", price="100 EUR"))
        for user in ("viewer", "carter", "old", "buyer"):
            shop.person(user)
        shop.track("viewer", "Product Viewed", product_id="lamp", ago_ms=DAY_MS)
        shop.track("carter", "Product Viewed", product_id="lamp", ago_ms=DAY_MS)
        shop.track("carter", "Product Added", product_id="lamp")
        shop.track("old", "Product Viewed", product_id="lamp", ago_ms=20 * DAY_MS)
        shop.track("buyer", "Product Viewed", product_id="lamp")
        shop.order("buyer", "o9", "lamp")
        shop.process()
        shop.products(product("lamp", price="95 EUR"))  # 5 %: too small
        shop.signal()
        assert shop.events(PRICE_DROPPED) == []
        shop.clock.advance(60)
        shop.products(product("lamp", price="95 EUR", sale_price="80 EUR"))  # a sale counts
        shop.signal()
        events = shop.events(PRICE_DROPPED)
        assert sorted((e["user_id"], e["body"]["properties"]["interest"]) for e in events) == [
            ("carter", "cart"), ("viewer", "view")]
        props = events[0]["body"]["properties"]
        assert (props["old_price"], props["new_price"], props["drop_amount"],
                props["drop_percent"], props["currency"]) == (95.0, 80.0, 15.0, 15.79, "EUR")
    finally:
        shop.close()


def test_an_amount_threshold_and_an_out_of_stock_product(tmp_path: Path) -> None:
    shop = Shop(tmp_path, ProductSettings(default_currency="EUR", price_drop_percent=None,
                                          price_drop_amount=5.0))
    try:
        shop.products(product("tv", price="1000 EUR"), product("gone", price="50 EUR"))
        shop.person("ann")
        shop.track("ann", "Product Viewed", product_id="tv")
        shop.track("ann", "Product Viewed", product_id="gone")
        shop.process()
        shop.clock.advance(60)
        shop.products(product("tv", price="995 EUR"),  # 0.5 %, but 5 EUR
                      product("gone", price="10 EUR", availability="out of stock"))
        shop.signal()
        assert [e["body"]["properties"]["product_id"] for e in shop.events(PRICE_DROPPED)] \
            == ["tv"]
    finally:
        shop.close()


def test_history_is_not_now_an_old_change_makes_no_event(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        shop.products(product("mug", availability="out of stock"))
        shop.person("ann")
        shop.track("ann", "Back in Stock Subscribed", product_id="mug")
        shop.process()
        shop.signal()
        shop.products(product("mug"))
        shop.clock.advance(2 * 86_400)  # the worker was down for two days
        shop.signal()
        assert shop.events(BACK_IN_STOCK) == []
    finally:
        shop.close()


def test_trusted_only_back_in_stock_requests(tmp_path: Path) -> None:
    shop = Shop(tmp_path, ProductSettings(default_currency="EUR",
                                          back_in_stock_from="trusted"))
    try:
        shop.products(product("mug", availability="out of stock"))
        shop.person("ann")
        shop.person("bob")
        shop.track("ann", "Back in Stock Subscribed", product_id="mug", trusted=False)
        shop.track("bob", "Back in Stock Subscribed", product_id="mug", trusted=True)
        shop.process()
        assert [pid for pid, *_ in _rows(shop, "product_alerts")] == [shop.log.pid("bob")]
    finally:
        shop.close()


def test_merges_forget_and_rebuild_keep_product_rows_with_the_person(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        shop.products(product("a"), product("b"))
        shop.log.add("track", event="Product Viewed", anon="anon-1",
                     properties={"product_id": "a"}, ts=shop.now_ms(), received=shop.now_ms())
        shop.log.add("track", event="Back in Stock Subscribed", anon="anon-1",
                     properties={"product_id": "b"}, ts=shop.now_ms(), received=shop.now_ms())
        shop.person("ann")
        shop.track("ann", "Product Viewed", product_id="a")
        shop.process()
        assert len({r[0] for r in _rows(shop, "product_activity")}) == 2
        # the visitor logs in: one person, the views added up
        shop.log.add("identify", user_id="ann", anon="anon-1", trusted=True,
                     ts=shop.now_ms(), received=shop.now_ms())
        shop.process()
        ann = shop.log.pid("ann")
        assert [(r[0], r[2], r[5]) for r in _rows(shop, "product_activity")] == [(ann, "a", 2)]
        assert [(r[0], r[1]) for r in _rows(shop, "product_alerts")] == [(ann, "b")]
        shop.order("ann", "o1", "a")
        shop.process()
        before = (_rows(shop, "product_activity"), _rows(shop, "product_orders"))
        rebuild(shop.conn, shop.clock, also=[ProductsStep(shop.settings)])
        after_ann = shop.log.pid("ann")
        assert [(r[2], r[5]) for r in _rows(shop, "product_activity")] == \
            [(r[2], r[5]) for r in before[0]]
        assert {r[2] for r in _rows(shop, "product_orders")} == {after_ann}
        forget(shop.conn, "ann", shop.now_ms())
        for table in ("product_activity", "product_orders", "product_alerts"):
            assert _rows(shop, table) == [], table
    finally:
        shop.close()
