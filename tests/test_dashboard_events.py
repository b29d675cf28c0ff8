"""The dashboard's Events pages: the log newest first with filters (origin, type, event,
source, person), paging, bounded windows, failed events with reasons, sign-in required."""

from __future__ import annotations

import re

from dashboard_util import assert_signed_out, html_of, page_data, signed_in
from kanal_testing import App
from test_dashboard_people import alice, process, send
from test_reports_api import _basic

from kanal_collector.store import events as store
from kanal_collector.store.keys import create_key, create_source


def next_link(html: str) -> str | None:
    found = re.search(r'rel="next" href="([^"]+)"', html)
    return None if found is None else found.group(1).replace("&amp;", "&")


def all_pages(env: App, path: str) -> list[int]:
    seen: list[int] = []
    link: str | None = path
    while link is not None:
        html = html_of(env, link)
        seen += page_data(html)["events"]
        link = next_link(html)
    return seen


def test_event_pages_need_a_session(kanal_app: App) -> None:
    alice(kanal_app)
    kanal_app.client.post("/v1/track", json={"userId": "alice-1"},
                          headers=_basic(kanal_app.keys["secret"]))
    assert_signed_out(kanal_app, ["/dashboard/events", "/dashboard/events?person=alice-1",
                                  "/dashboard/events/failed"], ["alice", "Alice"])


def test_events_filter_and_page(kanal_app: App) -> None:
    pid = alice(kanal_app)
    now = kanal_app.clock.now()
    conn = kanal_app.app.extensions["kanal"].db.conn()
    create_source(conn, "app", int(now * 1000))
    app_key = create_key(conn, "secret", int(now * 1000), source="app")
    send(kanal_app, [{"type": "track", "anonymousId": f"a{i}", "event": "Viewed",
                      "context": {"page": {"url": "https://shop.example/"}}}
                     for i in range(70)])
    r = kanal_app.client.post("/v1/batch", json={"batch": [
        {"type": "screen", "userId": "alice-1", "name": "Home"},
        {"type": "track", "userId": "bob", "event": "Opened App"}]}, headers=_basic(app_key))
    assert r.status_code == 200
    process(kanal_app)
    signed_in(kanal_app)
    everything = [e.id for e in store.recent_events(conn, limit=1000)]
    assert all_pages(kanal_app, "/dashboard/events") == everything
    assert len(everything) == 74
    viewed = all_pages(kanal_app, "/dashboard/events?event=Viewed")
    assert len(viewed) == 70
    app = all_pages(kanal_app, "/dashboard/events?source=app")
    assert app == everything[:2]
    assert all_pages(kanal_app, "/dashboard/events?source=app&type=screen") == everything[1:2]
    mine = all_pages(kanal_app, "/dashboard/events?person=alice%40example.com")
    assert mine == [everything[1], *everything[-2:]]
    html = html_of(kanal_app, "/dashboard/events?person=alice-1&type=screen")
    assert page_data(html)["events"] == [everything[1]]
    assert f'href="/dashboard/people/{pid}"' in html
    html_of(kanal_app, "/dashboard/events?source=nope", 404)
    html_of(kanal_app, "/dashboard/events?person=nobody", 404)
    live = html_of(kanal_app, "/dashboard/events?live=1&origin=server")
    assert '<meta http-equiv="refresh" content="5">' in live
    assert '<meta http-equiv="refresh"' not in html_of(kanal_app, "/dashboard/events")


def test_a_rare_filter_reads_a_bounded_window(kanal_app: App) -> None:
    send(kanal_app, [{"type": "track", "userId": "r", "event": "Rare"}])
    send(kanal_app, [{"type": "track", "userId": "c", "event": "Common"} for _ in range(25)])
    conn = kanal_app.app.extensions["kanal"].db.conn()
    rows, page = store.page(conn, event="Rare", limit=5, window=10)
    assert rows == [] and page.scanned and page.before is not None
    while page.before is not None and not rows:
        rows, page = store.page(conn, event="Rare", limit=5, window=10, before=page.before)
    assert [e.event for e in rows] == ["Rare"] and page.before is None


def test_failed_events_with_reasons_and_paging(kanal_app: App) -> None:
    r = kanal_app.client.post("/v1/batch", json={"batch": [
        {"type": "track", "userId": "u"} for _ in range(55)] + [{"type": "nonsense",
                                                                 "userId": "u"}]},
        headers=_basic(kanal_app.keys["secret"]))
    assert r.status_code == 200
    signed_in(kanal_app)
    html = html_of(kanal_app, "/dashboard/events/failed")
    first = page_data(html)["failed"]
    assert len(first) == 50
    assert "type must be one of alias" in html and "track needs an event name" in html
    html = html_of(kanal_app, next_link(html) or "")
    second = page_data(html)["failed"]
    assert len(second) == 6 and not set(first) & set(second) and next_link(html) is None
