"""Scheduled feeds, fetched from a real HTTP server on loopback through the SSRF guard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import db_at
from products_util import Shop

from kanal_collector.cli import cli
from kanal_collector.products import FeedError, FeedWorker, ProductSettings, fetch_feed
from kanal_collector.products.settings import Feed
from kanal_collector.store import products as store

DATA = Path(__file__).parent / "data" / "products"


class _FeedServer:
    """Serves the test feeds; counts requests; answers 304 to a matching ETag."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.body = (DATA / "merchant_rss.xml").read_bytes()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append((self.path, dict(self.headers)))
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/feed.xml")
                    self.end_headers()
                    return
                if self.path == "/metadata":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                    return
                if self.path == "/gone":
                    self.send_response(404)
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == '"v1"':
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feeds() -> Iterator[_FeedServer]:
    server = _FeedServer()
    try:
        yield server
    finally:
        server.close()


def _settings(url: str, *, allow: bool = True, **feed: Any) -> ProductSettings:
    return ProductSettings(allow_private_feeds=allow,
                           feeds=(Feed("shop", url, **feed),))


def test_a_loopback_feed_is_refused_unless_allowed(tmp_path: Path,
                                                   feeds: _FeedServer) -> None:
    shop = Shop(tmp_path)
    try:
        settings = _settings(feeds.url + "/feed.xml", allow=False)
        with pytest.raises(FeedError, match="127.0.0.1 is a loopback address"):
            fetch_feed(shop.conn, settings.feeds[0], settings, shop.now_ms())
        assert feeds.requests == []  # nothing left the machine
        state = store.feed_state(shop.conn, "shop")
        assert state is not None and state["status"] == "error"
        assert "loopback" in state["detail"]
    finally:
        shop.close()


def test_a_feed_is_imported_and_an_unchanged_one_costs_a_304(tmp_path: Path,
                                                             feeds: _FeedServer) -> None:
    shop = Shop(tmp_path)
    try:
        settings = _settings(feeds.url + "/moved", every_ms=3_600_000)
        report = fetch_feed(shop.conn, settings.feeds[0], settings, shop.now_ms())
        assert report is not None and (report.created, len(report.rejected)) == (3, 2)
        assert [p for p, _ in feeds.requests] == ["/moved", "/feed.xml"]
        row = store.load_products(shop.conn, ["MUG-BLUE"])["MUG-BLUE"]
        assert row["source"] == "feed:shop"
        again = fetch_feed(shop.conn, settings.feeds[0], settings, shop.now_ms())
        assert again is None
        assert feeds.requests[-1][1].get("If-None-Match") == '"v1"'
        state = store.feed_state(shop.conn, "shop")
        assert state is not None and state["status"] == "unchanged"
    finally:
        shop.close()


def test_a_redirect_to_a_metadata_address_is_refused_even_when_private_is_allowed(
        tmp_path: Path, feeds: _FeedServer) -> None:
    shop = Shop(tmp_path)
    try:
        settings = _settings(feeds.url + "/metadata")
        with pytest.raises(FeedError, match="cloud metadata"):
            fetch_feed(shop.conn, settings.feeds[0], settings, shop.now_ms())
        settings = _settings(feeds.url + "/gone")
        with pytest.raises(FeedError, match="HTTP 404"):
            fetch_feed(shop.conn, settings.feeds[0], settings, shop.now_ms())
    finally:
        shop.close()


def test_a_feed_over_max_bytes_is_refused(tmp_path: Path, feeds: _FeedServer) -> None:
    shop = Shop(tmp_path)
    try:
        settings = _settings(feeds.url + "/feed.xml", max_bytes=100)
        with pytest.raises(FeedError, match="larger than max_bytes"):
            fetch_feed(shop.conn, settings.feeds[0], settings, shop.now_ms())
        assert store.count_products(shop.conn) == (0, 0)
    finally:
        shop.close()


def test_the_worker_fetches_on_its_schedule(tmp_path: Path, feeds: _FeedServer) -> None:
    shop = Shop(tmp_path)
    worker = FeedWorker(shop.log.db, shop.clock,
                        _settings(feeds.url + "/feed.xml", every_ms=600_000))
    try:
        assert worker.run_once() == 1
        assert worker.run_once() == 0  # not due yet
        shop.clock.advance(599)
        assert worker.run_once() == 0
        shop.clock.advance(1)
        assert worker.run_once() == 1
        assert len(feeds.requests) == 2
        assert store.count_products(shop.conn) == (3, 2)
    finally:
        worker.close()
        shop.close()


def test_cli_feeds_and_fetch(tmp_path: Path, feeds: _FeedServer) -> None:
    config = tmp_path / "kanal.toml"
    config.write_text(f'[products]\nallow_private_feeds = true\n[[products.feeds]]\n'
                      f'name = "shop"\nurl = "{feeds.url}/feed.xml"\nevery = "2h"\n'
                      f'[[products.feeds]]\nname = "old"\nurl = "{feeds.url}/gone"\n')
    args = ["--db", db_at(tmp_path / "kanal.db"), "--config", str(config)]
    runner = CliRunner()
    result = runner.invoke(cli, ["products", "fetch", *args, "--create-db"])
    assert result.exit_code == 1
    assert "shop: 5 rows: 3 new" in result.output
    assert "old: failed:" in result.output and "HTTP 404" in result.output
    assert "1 of 2 feed(s) failed" in result.output
    listed = runner.invoke(cli, ["products", "feeds", *args])
    assert "shop\t" in listed.output and "\tok\t" in listed.output
    assert "3 new, 0 changed, 0 unchanged, 0 deleted, 2 rejected (first: line 53" in \
        listed.output
    unknown = runner.invoke(cli, ["products", "fetch", "nope", *args])
    assert unknown.exit_code == 1 and "no feed named nope" in unknown.output


@pytest.mark.parametrize(("table", "why"), [
    ('[[products.feeds]]\nname = "a"\nurl = "ftp://x"\n', "url: an http"),
    ('[[products.feeds]]\nname = "a b"\nurl = "https://x"\n', "name: letters"),
    ('[[products.feeds]]\nname = "a"\nurl = "https://x"\nevery = "soon"\n', "every"),
    ('[products]\nprice_drop_percent = 150\n', "price_drop_percent: a number from 0 to 100"),
    ('[products]\nmin_support = 0\n', "min_support"),
    ('[products]\nback_in_stock_from = "anyone"\n', "back_in_stock_from"),
    ('[products]\nfrobnicate = 1\n', "unknown key products.frobnicate"),
])
def test_bad_products_settings_stop_serve_with_the_key(tmp_path: Path, table: str,
                                                        why: str) -> None:
    from kanal_collector.app import create_app
    from kanal_collector.config import load_config
    from kanal_collector.errors import ConfigError

    config = tmp_path / "kanal.toml"
    config.write_text(table)
    with pytest.raises(ConfigError, match=why):
        create_app(load_config(config, overrides={"db": db_at(tmp_path / "k.db")}))
