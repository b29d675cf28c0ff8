"""Scheduled feeds: fetch each `[[products.feeds]]` URL every `every` and import it.

Requests go through the SSRF guard (channels/netguard.py): never to loopback, private,
link-local or cloud-metadata addresses, checked after DNS resolution on every
connection and on every redirect hop (at most 5), unless `[products]
allow_private_feeds = true` (metadata addresses stay refused even then). Conditional
requests (ETag, Last-Modified) make an unchanged feed cost one 304. The body is
streamed to a temporary file (at most `max_bytes`) and imported like `kanal products
import` (source `feed:NAME`); a feed that fails is tried again after a quarter of its
interval (at most 15 minutes), and `kanal products feeds` shows why.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ..channels import netguard
from ..clock import Clock
from ..store import products as store
from ..store.connection import Connection
from ..store.db import Database, transaction
from .errors import FeedError
from .feeds import read_feed
from .importer import ImportReport, import_rows
from .settings import Feed, ProductSettings

log = logging.getLogger("kanal.products")

MAX_REDIRECTS = 5
_RETRY_MS = 15 * 60_000
_TYPES = (("xml", "xml"), ("rss", "xml"), ("atom", "xml"), ("csv", "csv"),
          ("tab-separated", "csv"), ("json", "jsonl"))

Session = Callable[[], requests.Session]


def _format(feed: Feed, response: requests.Response) -> str:
    if feed.format != "auto":
        return feed.format
    content_type = response.headers.get("Content-Type", "").lower()
    for needle, fmt in _TYPES:
        if needle in content_type:
            return fmt
    suffix = Path(urlsplit(feed.url).path).suffix.lower()
    return {".xml": "xml", ".rss": "xml", ".atom": "xml", ".csv": "csv", ".tsv": "csv",
            ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}.get(suffix, "auto")


def download(feed: Feed, target: Path, *, allow_private: bool,
             state: dict[str, Any] | None, session: Session | None = None
             ) -> tuple[str, dict[str, str]] | None:
    """Fetch a feed into `target`; (format, validators) or None when it hasn't changed.

    FeedError for a refused address, an HTTP error, a network error or a body over
    `max_bytes`.
    """
    headers = dict(feed.headers)
    if state and state.get("url") == feed.url:
        if state.get("etag"):
            headers["If-None-Match"] = str(state["etag"])
        if state.get("last_modified"):
            headers["If-Modified-Since"] = str(state["last_modified"])
    url = feed.url
    with (session or (lambda: netguard.guarded_session(allow_private=allow_private)))() as s:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                netguard.check_url(url, allow_private=allow_private)
                response = s.get(url, headers=headers, timeout=feed.timeout, stream=True,
                                 allow_redirects=False)
            except netguard.BlockedAddress as exc:
                raise FeedError(f"refused: {exc}") from None
            except requests.RequestException as exc:
                raise FeedError(f"cannot fetch {url}: {exc}") from None
            with response:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise FeedError(f"{url}: redirect without a Location")
                    if urlsplit(urljoin(url, location)).netloc != urlsplit(url).netloc:
                        headers = {k: v for k, v in headers.items()
                                   if k.lower() in ("if-none-match", "if-modified-since")}
                    url = urljoin(url, location)
                    continue
                if response.status_code == 304:
                    return None
                if response.status_code != 200:
                    raise FeedError(f"{url} answered HTTP {response.status_code}")
                _save(response, target, feed.max_bytes)
                validators = {"etag": response.headers.get("ETag", ""),
                              "last_modified": response.headers.get("Last-Modified", "")}
                return _format(feed, response), validators
    raise FeedError(f"{feed.url}: more than {MAX_REDIRECTS} redirects")


def _save(response: requests.Response, target: Path, limit: int) -> None:
    size = 0
    try:
        with target.open("wb") as out:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise FeedError(f"the feed is larger than max_bytes ({limit})")
                out.write(chunk)
    except requests.RequestException as exc:
        raise FeedError(f"the download broke off: {exc}") from None


def fetch_feed(conn: Connection, feed: Feed, settings: ProductSettings, now_ms: int,
               *, session: Session | None = None) -> ImportReport | None:
    """Fetch and import one feed now, and record how it went; None when unchanged.

    FeedError (also recorded) when it could not be fetched or read.
    """
    state = store.feed_state(conn, feed.name)
    new_state: dict[str, Any] = {**(state or {}), "name": feed.name, "url": feed.url,
                                 "last_attempt_at": now_ms,
                                 "next_at": now_ms + feed.every_ms}
    if state is not None and state.get("url") != feed.url:
        new_state.update(etag=None, last_modified=None)
    try:
        with tempfile.TemporaryDirectory(prefix="kanal-feed-") as tmp:
            target = Path(tmp) / "feed"
            got = download(feed, target, allow_private=settings.allow_private_feeds,
                           state=state, session=session)
            if got is None:
                new_state.update(status="unchanged", detail="304 Not Modified",
                                 last_success_at=now_ms)
                report = None
            else:
                fmt, validators = got
                report = import_rows(conn, read_feed(target, fmt), source=f"feed:{feed.name}",
                                     now=now_ms, default_currency=settings.default_currency,
                                     delete_missing=feed.delete_missing)
                new_state.update(status="ok", last_success_at=now_ms,
                                 etag=validators["etag"] or None,
                                 last_modified=validators["last_modified"] or None,
                                 detail=_summary(report))
    except FeedError as exc:
        new_state.update(status="error", detail=str(exc),
                         next_at=now_ms + min(_RETRY_MS, max(feed.every_ms // 4, 1)))
        with transaction(conn):
            store.save_feed_state(conn, new_state)
        raise
    with transaction(conn):
        store.save_feed_state(conn, new_state)
    return report


def _summary(report: ImportReport) -> str:
    text = (f"{report.rows} rows: {report.created} new, {report.updated} changed, "
            f"{report.unchanged} unchanged, {report.deleted} deleted, "
            f"{len(report.rejected)} rejected")
    if report.rejected:
        first = report.rejected[0]
        text += f" (first: line {first.line}: {first.reason})"
    return text


class FeedWorker:
    """Fetches the configured feeds when they are due (a Worker)."""

    name = "product-feeds"

    def __init__(self, db: Database, clock: Clock, settings: ProductSettings, *,
                 session: Session | None = None) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.session = session
        self._conn: Connection | None = None

    def run_once(self) -> int:
        """Fetch every due feed; returns how many were fetched."""
        if not self.settings.feeds:
            return 0
        if self._conn is None:
            self._conn = self.db.connect()
        done = 0
        for feed in self.settings.feeds:
            now_ms = int(self.clock.now() * 1000)
            state = store.feed_state(self._conn, feed.name)
            if state is not None and state["url"] == feed.url and state["next_at"] > now_ms:
                continue
            done += 1
            try:
                report = fetch_feed(self._conn, feed, self.settings, now_ms,
                                    session=self.session)
            except FeedError as exc:
                log.warning("feed %s: %s", feed.name, exc)
                continue
            if report is not None:
                log.info("feed %s: %s", feed.name, _summary(report))
        return done

    def close(self) -> None:
        """Close the worker's connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
