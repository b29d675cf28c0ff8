"""The dashboard's People pages: search, a person's page, export and forget behind a
confirmation step (with CSRF), sign-in required, timeline paging."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dashboard_util import (
    WELCOME,
    assert_csrf_refused,
    assert_signed_out,
    html_of,
    ids_of,
    journey_app,
    page_data,
    post,
    signed_in,
)
from kanal_testing import App
from test_reports_api import _basic, seed

from kanal_collector.app import build_processor
from kanal_collector.clock import utc_iso
from kanal_collector.store import identities


def process(env: App) -> None:
    processor = build_processor(env.app.extensions["kanal"].db)
    try:
        processor.catch_up()
    finally:
        processor.close()


def send(env: App, batch: list[dict[str, Any]], key: str = "secret") -> None:
    r = env.client.post("/v1/batch", json={"batch": batch}, headers=_basic(env.keys[key]))
    assert r.status_code == 200, r.get_json()
    process(env)


def alice(env: App) -> int:
    """A person with an email, a phone, a trait and an order; their profile id."""
    now = env.clock.now()
    send(env, [{"type": "identify", "userId": "alice-1", "anonymousId": "anon-a",
                "traits": {"email": "Alice@Example.com", "phone": "+46 70 123 45 67",
                           "name": "Alice"}, "timestamp": utc_iso(now - 60)},
               {"type": "track", "userId": "alice-1", "event": "Order Completed",
                "properties": {"order_id": "a1", "revenue": 12.5, "currency": "EUR"},
                "timestamp": utc_iso(now - 30)}])
    return int(env.rows("SELECT profile_id FROM identities WHERE value = 'alice-1'")[0][0])


def test_people_pages_need_a_session_and_leak_nothing(kanal_app: App) -> None:
    pid = alice(kanal_app)
    assert_signed_out(
        kanal_app, ["/dashboard/people", "/dashboard/people?q=alice%40example.com",
                    f"/dashboard/people/{pid}", f"/dashboard/people/{pid}/export",
                    f"/dashboard/people/{pid}/forget"],
        ["alice", "Alice", "+46701234567"],
        [f"/dashboard/people/{pid}/export", f"/dashboard/people/{pid}/forget"])


def test_search_by_each_kind_of_identity(kanal_app: App) -> None:
    pid = alice(kanal_app)
    seed(kanal_app)
    signed_in(kanal_app)
    for query in ("alice@example.com", "ALICE@example.com", "alice-1", "alice",
                  "+46701234567", "070-123 45 67".replace("070", "+4670"), "anon-a"):
        html = html_of(kanal_app, "/dashboard/people?q=" + query.replace("+", "%2B"))
        assert page_data(html)["profiles"][0] == pid, query
    html = html_of(kanal_app, "/dashboard/people?q=nobody-like-this")
    assert page_data(html)["profiles"] == [] and "Nobody has that identity." in html
    listing = page_data(html_of(kanal_app, "/dashboard/people"))["profiles"]
    assert pid in listing and len(listing) == 4


def test_people_listing_pages(kanal_app: App) -> None:
    now = kanal_app.clock.now()
    send(kanal_app, [{"type": "identify", "userId": f"u{i:03d}",
                      "timestamp": utc_iso(now - 1000 + i)} for i in range(60)])
    signed_in(kanal_app)
    first = page_data(html_of(kanal_app, "/dashboard/people"))["profiles"]
    html = html_of(kanal_app, "/dashboard/people?offset=50")
    second = page_data(html)["profiles"]
    assert len(first) == 50 and len(second) == 10 and not set(first) & set(second)
    assert 'rel="prev" href="/dashboard/people?offset=0"' in html and 'rel="next"' not in html
    # A hand-edited offset shows the first page rather than an error.
    assert page_data(html_of(kanal_app, "/dashboard/people?offset=x"))["profiles"] == first


def test_a_search_reads_a_bounded_number_of_identities(
        kanal_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short prefix matching more identities than a search reads: the people seen most
    recently of the first ones alphabetically, and the page says to type more."""
    now = kanal_app.clock.now()
    send(kanal_app, [{"type": "identify", "userId": f"u{i:03d}",
                      "timestamp": utc_iso(now - 1000 - i)} for i in range(30)])
    conn = kanal_app.app.extensions["kanal"].db.conn()
    pid = {f"u{i:03d}": identities.identity_profile(conn, "user_id", f"u{i:03d}")
           for i in range(30)}
    signed_in(kanal_app)
    html = html_of(kanal_app, "/dashboard/people?q=u0")
    assert page_data(html)["profiles"] == [pid[f"u{i:03d}"] for i in range(30)]
    assert "Type more" not in html
    monkeypatch.setattr(identities, "SEARCH_MATCHES", 12)
    html = html_of(kanal_app, "/dashboard/people?q=u0")
    # u000 … u011 alphabetically, seen most recently first (u000 was seen last)
    assert page_data(html)["profiles"] == [pid[f"u{i:03d}"] for i in range(12)]
    assert "More than 12 identities start with it" in html and "Type more" in html
    assert page_data(html_of(kanal_app, "/dashboard/people?q=u02"))["profiles"] == [
        pid[f"u{i:03d}"] for i in range(20, 30)]  # typing more finds the rest
    r = kanal_app.client.get("/api/profiles?q=u0",
                             headers={"Authorization": f"Bearer {kanal_app.keys['admin']}"})
    assert r.get_json()["capped"] is True and len(r.get_json()["profiles"]) == 12


def test_a_persons_page(kanal_app: App) -> None:
    pid = alice(kanal_app)
    send(kanal_app, [{"type": "identify", "anonymousId": "anon-a",
                      "traits": {"email": "other@example.com"}}], key="public")
    signed_in(kanal_app)
    html = html_of(kanal_app, f"/dashboard/people/{pid}")
    assert "alice@example.com" in html and "+46701234567" in html and "anon-a" in html
    assert ids_of(html, "unverified") == ["email"] and "other@example.com" in html
    assert "Alice" in html and "12.5" in html          # a trait, a computed value
    assert "No predictions yet" in html
    assert [json.loads(x) for x in ids_of(html, "event")]  # the timeline
    assert page_data(html)["profileId"] == pid
    assert len(ids_of(html, "event")) == 3
    html_of(kanal_app, "/dashboard/people/999999", 404)


def test_journey_runs_with_why_and_messages(tmp_path: Any) -> None:
    with journey_app(tmp_path, {"welcome": WELCOME}) as (world, env):
        pid = world.person("u1", email="u1@example.com")
        world.track("u1", "Signed Up")
        signed_in(env)
        html = html_of(env, f"/dashboard/people/{pid}")
        data = page_data(html)
        assert len(data["runs"]) == 1 and len(data["messages"]) == 1
        assert ids_of(html, "journey") == ["welcome"]
        # `why` inline: the run's steps in the words of `kanal journeys why`.
        assert f'data-run="{data["runs"][0]}"' in html
        assert "still in the journey" in html
        assert ids_of(html, "outbox") == [str(m) for m in data["messages"]]


def test_timeline_pages_without_skipping_events_in_one_millisecond(kanal_app: App) -> None:
    now = kanal_app.clock.now()
    send(kanal_app, [{"type": "track", "userId": "t", "event": f"E{i}",
                      "timestamp": utc_iso(now - 100 + (i // 7))} for i in range(120)])
    pid = int(kanal_app.rows("SELECT profile_id FROM identities WHERE value = 't'")[0][0])
    signed_in(kanal_app)
    seen: list[str] = []
    path = f"/dashboard/people/{pid}"
    while True:
        html = html_of(kanal_app, path)
        seen += ids_of(html, "event")
        nxt = [h for h in html.split('rel="next" href="')[1:]]
        if not nxt:
            break
        path = nxt[0].split('"')[0].replace("&amp;", "&")
    assert len(seen) == 120 and len(set(seen)) == 120


def test_export_needs_confirmation_and_csrf(kanal_app: App) -> None:
    pid = alice(kanal_app)
    csrf = signed_in(kanal_app)
    form = html_of(kanal_app, f"/dashboard/people/{pid}/export")
    assert 'name="confirm"' in form and "alice@example.com" in form
    assert_csrf_refused(kanal_app, f"/dashboard/people/{pid}/export", confirm="yes")
    r = post(kanal_app, f"/dashboard/people/{pid}/export", csrf)
    assert r.status_code == 400 and "Tick the box" in r.get_data(as_text=True)
    r = post(kanal_app, f"/dashboard/people/{pid}/export", csrf, confirm="yes")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == f'attachment; filename="kanal-profile-{pid}.json"'
    data = json.loads(r.get_data(as_text=True))
    assert data["id"] == pid and len(data["events"]) == 2
    assert r.headers["Cache-Control"] == "no-store"


def test_forget_needs_confirmation_and_csrf_and_forgets(kanal_app: App) -> None:
    pid = alice(kanal_app)
    csrf = signed_in(kanal_app)
    assert "can't be undone" in html_of(kanal_app, f"/dashboard/people/{pid}/forget")
    assert_csrf_refused(kanal_app, f"/dashboard/people/{pid}/forget", confirm="yes")
    r = post(kanal_app, f"/dashboard/people/{pid}/forget", csrf)
    assert r.status_code == 400
    assert kanal_app.rows("SELECT count(*) FROM profiles") == [(1,)]
    r = post(kanal_app, f"/dashboard/people/{pid}/forget", csrf, confirm="yes")
    assert r.status_code == 303
    message = html_of(kanal_app, r.headers["Location"])
    assert f"Forgot profile {pid}: 2 events deleted" in message
    assert kanal_app.rows("SELECT count(*) FROM profiles") == [(0,)]
    assert kanal_app.rows("SELECT count(*) FROM events") == [(0,)]
    assert kanal_app.rows("SELECT count(*) FROM suppressions")[0][0] >= 3
    # A later event of the forgotten person is not kept (the CLI's suppression).
    send(kanal_app, [{"type": "track", "userId": "alice-1", "event": "Back"}])
    assert kanal_app.rows("SELECT count(*) FROM profiles") == [(0,)]
    r = post(kanal_app, f"/dashboard/people/{pid}/forget", csrf, confirm="yes")
    assert r.status_code == 404
