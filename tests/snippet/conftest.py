"""Fixtures for the web snippet: a shop origin on loopback, and headless Chromium.

The shop is served from its own port, so the page's origin differs from the collector's
and every send from kanal.js is a real cross-origin request. Pages load kanal.js the way a
shop does: through the loader tag (js_snippet/loader.min.js), from the collector's
`/kanal.js` (see `loader_tag` in test_snippet_browser.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class Shop:
    """A tiny web shop on 127.0.0.1: `pages` maps a path (no query) to its HTML."""

    url: str
    pages: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Other files by path: (content type, body) — scripts the shop serves itself."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of every page (a Content-Security-Policy)."""

    def add(
        self, path: str, *, tag: str, body: str = "", after: str = "", title: str = "Shop"
    ) -> str:
        """Serve a page with the loader `tag` (then inline JS `after`); return its URL."""
        script = f"<script>{after}</script>" if after else ""
        self.pages[path] = (
            f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>"
            f"{tag}{script}</head><body>{body}</body></html>"
        )
        return self.url + path


class _ShopHandler(BaseHTTPRequestHandler):
    shop: Shop

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        html = self.shop.pages.get(path)
        if path in self.shop.files:
            kind, data = self.shop.files[path]
        else:
            kind, data = "text/html; charset=utf-8", (html or "not found").encode()
        self.send_response(200 if html or path in self.shop.files else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if html:
            for name, value in self.shop.headers.items():
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def shop() -> Iterator[Shop]:
    """A shop origin of its own (not the collector's), serving pages set by the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShopHandler)
    shop = Shop(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = type("Handler", (_ShopHandler,), {"shop": shop})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield shop
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile: no cookies, no storage."""
    ctx = browser.new_context()
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    """One tab in the fresh profile."""
    return context.new_page()

