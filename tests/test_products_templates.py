"""Product functions in message templates, at send time, and what recommendations earn."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import db_at
from messages_util import channel
from products_util import DAY_MS, Shop, product

from kanal_collector.config import Config
from kanal_collector.messages import Catalog, Dispatcher, enqueue
from kanal_collector.messages.catalog import parse_message
from kanal_collector.messages.errors import DefinitionError
from kanal_collector.products.report import recommendations_report
from kanal_collector.products.templates import template_globals
from kanal_collector.store import tracking as tracking_store
from kanal_collector.store.db import transaction
from kanal_collector.store.events import append_events
from kanal_collector.tracking.events import EMAIL_LINK_CLICKED, email_event
from kanal_collector.tracking.hook import email_tracking_hook
from kanal_collector.tracking.tokens import CLICK, read_token

BROWSE = {
    "name": "browse",
    "email": {
        "subject": "Still thinking about {{ product(data.event.product_id).name }}?",
        "html": ("{% set p = product(data.event.product_id, fallback='similar') %}"
                 "{% if p %}{{ product_block(p) }}{% endif %}"
                 "{% for r in recommend(kind='similar', n=3) %}{{ product_block(r) }}"
                 "{% endfor %}"),
        "text": "{% for r in recommend(kind='similar', n=3) %}{{ product_block(r) }}\n"
                "{% endfor %}",
    },
    "sms": {"text": "{{ product(data.event.product_id).name }}: "
                    "{{ product(data.event.product_id).url }}"},
    "webhook": {"payload": {"items": "{{ recommend(n=2) | map(attribute='id') | join(',') }}"}},
}


class _World:
    def __init__(self, tmp: Path) -> None:
        self.shop = Shop(tmp)
        self.email = channel("email")
        self.sms = channel("sms", identity="phone")
        self.webhook = channel("webhook", identity=None)
        config = Config(db=self.shop.log.db.target,
                        sections={"tracking": {"base_url": "https://t.shop.example"}})
        self.dispatcher = Dispatcher(
            self.shop.log.db, self.shop.clock,
            {"email": self.email, "sms": self.sms, "webhook": self.webhook},
            Catalog.from_dicts([BROWSE]),
            before_send=[email_tracking_hook(config, self.shop.clock)],
            template_globals=[template_globals(self.shop.settings)])
        self._keys = 0

    def send(self, user: str, channel_name: str = "email", **event: Any) -> int:
        self._keys += 1
        conn = self.shop.conn
        with transaction(conn):
            oid = enqueue(conn, profile_id=self.shop.log.pid(user), message="browse",
                          channel=channel_name, idempotency_key=f"k{self._keys}",
                          kind="marketing", journey="browse_abandonment",
                          data={"event": event}, now=self.shop.clock.now())
        self.dispatcher.drain()
        return oid

    def state(self, oid: int) -> tuple[str, str | None]:
        row = self.shop.conn.execute("SELECT state, reason FROM outbox WHERE id = ?",
                                     (oid,)).fetchone()
        return row[0], row[1]

    def click(self, html: str, url: str) -> None:
        """What the click route does for the tracked link that leads to `url`."""
        conn = self.shop.conn
        for token in re.findall(r"https://t\.shop\.example/c/([A-Za-z0-9_-]+)", html):
            parsed = read_token(tracking_store_keys(conn), token, CLICK)
            assert parsed is not None and parsed.index is not None
            found = tracking_store.link_target(conn, parsed.id, parsed.index)
            assert found is not None
            send, target = found
            if target == url:
                props = {"outbox_id": send.outbox_id, "message": send.message,
                         "journey": send.journey, "channel": "email", "link_url": target,
                         "link_index": parsed.index}
                row = email_event(conn, EMAIL_LINK_CLICKED, profile_id=send.profile_id,
                                  properties=props, now_ms=self.shop.now_ms())
                assert row is not None
                with transaction(conn):
                    append_events(conn, [row])
                self.shop.process()
                return
        raise AssertionError(f"no tracked link to {url}")

    def close(self) -> None:
        self.dispatcher.close()
        self.shop.close()


def tracking_store_keys(conn: Any) -> list[bytes]:
    from kanal_collector.tracking.keys import load_keys

    return load_keys(conn, (), 0)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = _World(tmp_path)
    w.shop.products(product("mug", title="Blue mug", price="12 EUR", sale_price="9.5 EUR",
                            price_sek="120"),
                    product("cup"), product("pot"), product("jar"),
                    product("oos", availability="out of stock"),
                    product("garden", product_type="Garden"))
    # Marketing SMS needs an opt-in (issue 13): Ann gave one.
    w.shop.person("ann", currency="SEK", phone="+46701234567", subscriptions={"sms": True})
    w.shop.products(product("bowl", title="Bowl <b> & co"))
    w.shop.build()
    try:
        yield w
    finally:
        w.close()


def test_a_product_block_in_an_email(world: _World) -> None:
    oid = world.send("ann", product_id="mug")
    assert world.state(oid) == ("sent", None)
    content = world.email.sent[-1].content
    assert content["subject"] == "Still thinking about Blue mug?"
    html = content["html"]
    # the product in ann's currency (SEK; never converted), its image, name, tracked links
    assert "120.00 SEK" in html and "EUR" not in html.split("kanal-product")[1][:400]
    assert 'src="https://shop.example/img/mug.jpg"' in html
    assert "https://shop.example/p/mug" not in html  # links are tracked
    assert html.count('class="kanal-product"') == 4  # the product and three similar
    assert "Bowl &lt;b&gt; &amp; co" in html  # names are escaped
    assert "mug" not in re.findall(r"img/(\w+)\.jpg", html)[1:]  # not recommended back
    assert "oos" not in html and "garden" not in html  # out of stock; other category
    targets = [t for _, t in tracking_store_links(world, oid)]
    assert "https://shop.example/p/mug" in targets
    text = content["text"]
    assert " — 10.00 EUR https://shop.example/p/" in text


def tracking_store_links(world: _World, oid: int) -> list[tuple[int, str]]:
    return [(int(r[0]), str(r[1])) for r in world.shop.conn.execute(
        "SELECT idx, url FROM tracking_links WHERE outbox_id = ? ORDER BY idx", (oid,))]


def test_sms_and_webhook_use_the_same_functions(world: _World) -> None:
    oid = world.send("ann", "sms", product_id="cup")
    assert world.state(oid) == ("sent", None)
    assert world.sms.sent[-1].content["text"] == "Product cup: https://shop.example/p/cup"
    oid = world.send("ann", "webhook", product_id="cup")
    items = world.webhook.sent[-1].content["payload"]["items"].split(",")
    assert len(items) == 2 and "cup" not in items


def test_out_of_stock_or_deleted_is_skipped_or_stood_in_for(world: _World) -> None:
    oid = world.send("ann", product_id="oos")  # subject names it: renders empty, still sent
    assert world.state(oid)[0] == "sent"
    html = world.email.sent[-1].content["html"]
    assert "img/oos.jpg" not in html
    assert html.count('class="kanal-product"') == 4  # a similar product stands in
    world.shop.conn.execute("UPDATE products SET deleted_at = 1 WHERE id = 'cup'")
    oid = world.send("ann", "sms", product_id="cup")
    assert world.state(oid)[0] == "sent"
    assert world.sms.sent[-1].content["text"] == ": "  # nothing stale is sent


def test_an_unknown_product_fails_the_message_visibly(world: _World) -> None:
    oid = world.send("ann", "sms", product_id="no-such-thing")
    state, reason = world.state(oid)
    assert state == "failed"
    assert reason is not None and "unknown product id 'no-such-thing'" in reason
    assert world.sms.sent == []


def test_templates_may_name_the_functions_but_nothing_else_new() -> None:
    parse_message({"name": "m", "sms": {"text": "{{ product('a').name }}"}})
    with pytest.raises(DefinitionError, match="unknown name products"):
        parse_message({"name": "m", "sms": {"text": "{{ products('a') }}"}})


def test_a_click_then_a_purchase_counts_for_the_kind_and_message(world: _World) -> None:
    shop = world.shop
    oid = world.send("ann", product_id="mug")
    html = world.email.sent[-1].content["html"]
    shown = shop.conn.execute("SELECT url, product_id, kind FROM product_rec_links "
                              "WHERE outbox_id = ? ORDER BY url", (oid,)).fetchall()
    kinds = {pid: kind for _, pid, kind in shown}
    assert kinds["mug"] == "product" and set(kinds.values()) == {"product", "similar"}
    similar = next(pid for pid, kind in kinds.items() if kind == "similar")
    world.click(html, f"https://shop.example/p/{similar}")
    shop.clock.advance(3 * 86_400)
    shop.order("ann", "order-1", (similar, 25.0), "jar")
    shop.order("ann", "order-1", (similar, 25.0), "jar")  # the same order twice
    shop.process()
    report = recommendations_report(shop.conn, since_ms=0, until_ms=shop.now_ms() + 1)
    assert report["totals"]["conversions"] == 1 and report["totals"]["revenue"] == 25.0
    row = next(r for r in report["kinds"] if r["kind"] == "similar")
    assert (row["shown"], row["clicks"], row["conversions"], row["revenue"]) == (3, 1, 1, 25.0)
    assert any(m["message"] == "browse" and m["conversions"] == 1 for m in report["messages"])


def test_last_click_wins_and_the_window_is_seven_days(world: _World) -> None:
    shop = world.shop
    world.send("ann", product_id="mug")
    first = world.email.sent[-1].content["html"]
    world.click(first, "https://shop.example/p/mug")  # kind "product"
    shop.clock.advance(86_400)
    world.send("ann", product_id="cup")
    second = world.email.sent[-1].content["html"]
    assert "img/mug.jpg" in second  # mug is now a similar product of cup
    world.click(second, "https://shop.example/p/mug")  # kind "similar": the last click
    shop.clock.advance(86_400)
    shop.order("ann", "o1", ("mug", 9.5))
    shop.process()
    credited = shop.conn.execute("SELECT kind, outbox_id, revenue FROM "
                                 "product_rec_conversions").fetchall()
    assert [(k, r) for k, _, r in credited] == [("similar", 9.5)]
    shop.clock.advance(8 * DAY_MS // 1000)  # more than 7 days after the last click
    shop.order("ann", "o2", ("mug", 9.5))
    shop.process()
    assert shop.conn.execute("SELECT count(*) FROM product_rec_conversions").fetchone()[0] \
        == 1


def test_a_required_product_that_sold_out_skips_the_message(tmp_path: Path) -> None:
    w = _World(tmp_path)
    w.dispatcher.catalog = Catalog.from_dicts([{
        "name": "browse", "sms": {"text": "{{ product(data.event.product_id, "
                                          "required=True).name }} is back"}}])
    try:
        w.shop.products(product("mug"), product("oos", availability="out of stock"))
        w.shop.person("ann", phone="+46701234567", subscriptions={"sms": True})
        oid = w.send("ann", "sms", product_id="mug")
        assert w.state(oid) == ("sent", None)
        assert w.sms.sent[-1].content["text"] == "Product mug is back"
        oid = w.send("ann", "sms", product_id="oos")
        assert w.state(oid) == ("skipped", "product 'oos' is out of stock")
        assert len(w.sms.sent) == 1
    finally:
        w.close()


def test_preview_renders_products_and_records_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kanal_collector.cli import cli

    shop = Shop(tmp_path)
    shop.products(product("mug", title="Blue mug"))
    shop.person("ann")
    shop.close()
    messages = tmp_path / "messages"
    messages.mkdir()
    (messages / "hi.yaml").write_text(
        'email:\n  subject: "{{ product(\'mug\').name }}"\n'
        '  html: "{{ product_block(product(\'mug\')) }}"\n')
    args = ["--db", db_at(tmp_path / "kanal.db"), "--dir", str(messages)]
    result = CliRunner().invoke(cli, ["messages", "preview", "hi", "ann", *args])
    assert result.exit_code == 0, result.output
    assert "Blue mug" in result.output and 'class="kanal-product"' in result.output
    from kanal_testing import query

    assert query(tmp_path / "kanal.db", "SELECT count(*) FROM product_rec_links") == [(0,)]
    (messages / "hi.yaml").write_text('sms:\n  text: "{{ product(\'nope\').name }}"\n')
    result = CliRunner().invoke(cli, ["messages", "preview", "hi", "ann", *args])
    assert result.exit_code == 1
    assert "unknown product id 'nope'" in result.output and "Traceback" not in result.output
