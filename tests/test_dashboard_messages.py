"""The dashboard's Messages pages: the outbox paged and filtered, retry of in-doubt and
failed rows (the code of `kanal outbox retry`, with CSRF), previews of a message for a
person per language and channel, sign-in required."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_util import (
    assert_csrf_refused,
    assert_signed_out,
    html_of,
    ids_of,
    page_data,
    post,
    signed_in,
)
from kanal_testing import App, make_app
from messages_util import CART
from test_dashboard_people import alice

from kanal_collector.app import close_app
from kanal_collector.store import outbox as store
from kanal_collector.store.db import transaction


@pytest.fixture
def env(tmp_path: Path) -> Any:
    messages = tmp_path / "messages"
    messages.mkdir()
    (messages / "cart.yaml").write_text(yaml.safe_dump(CART), encoding="utf-8")
    app = make_app(tmp_path / "kanal.db", sections={"messages": {"messages_dir": str(messages)}})
    try:
        yield app
    finally:
        close_app(app.app)


def rows(env: App, pid: int, states: list[str], channel: str = "email") -> list[int]:
    """Outbox rows of `pid`, one per state (oldest first); their ids."""
    conn = env.app.extensions["kanal"].db.conn()
    out = []
    with transaction(conn):
        for i, state in enumerate(states):
            row_id, _ = store.insert(conn, store.NewRow(
                f"k{channel}{len(out)}-{i}-{state}", pid, "cart", "marketing", "cart",
                channel, [channel], None, None, {}, state, f"reason {i}", 0, 1000 + i))
            out.append(row_id)
    return out


def test_message_pages_need_a_session(env: App) -> None:
    pid = alice(env)
    [row] = rows(env, pid, ["failed"])
    assert_signed_out(env, ["/dashboard/messages", "/dashboard/messages?state=failed",
                            f"/dashboard/messages/preview?person={pid}&message=cart"],
                      ["alice", "Alice"], [f"/dashboard/messages/{row}/retry"])


def test_outbox_listing_filters_and_pages(env: App) -> None:
    pid = alice(env)
    made = rows(env, pid, ["sent"] * 70 + ["failed", "in_doubt"])
    made += rows(env, pid, ["sent"] * 3, channel="sms")
    signed_in(env)
    html = html_of(env, "/dashboard/messages")
    first = [int(x) for x in page_data(html)["rows"]]
    assert first == sorted(made, reverse=True)[:50]
    assert 'data-kpi="failed" data-value="1"' in html
    assert 'data-kpi="in_doubt" data-value="1"' in html
    nxt = html.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = page_data(html_of(env, nxt))["rows"]
    assert sorted(first + second, reverse=True) == sorted(made, reverse=True)
    failed = page_data(html_of(env, "/dashboard/messages?state=failed"))["rows"]
    assert failed == [made[70]]
    sms = page_data(html_of(env, "/dashboard/messages?channel=sms"))["rows"]
    assert sms == made[72:][::-1]
    html_of(env, "/dashboard/messages?state=lost", 400)


def test_a_filter_reads_a_bounded_window_and_says_so(env: App) -> None:
    pid = alice(env)
    made = rows(env, pid, ["sent"], channel="sms")
    made += rows(env, pid, ["sent"] * 30)
    conn = env.app.extensions["kanal"].db.conn()
    found, page = store.page(conn, channel="sms", limit=5, window=10)
    assert found == [] and page.scanned and page.before == made[-10]
    calls = 1
    while page.before is not None and not found:
        found, page = store.page(conn, channel="sms", limit=5, window=10, before=page.before)
        calls += 1
    assert [r.id for r in found] == [made[0]] and page.before is None and calls == 4


def test_retry_needs_csrf_and_queues_in_doubt_and_failed_rows(env: App) -> None:
    pid = alice(env)
    failed, doubt, sent = rows(env, pid, ["failed", "in_doubt", "sent"])
    csrf = signed_in(env)
    html = html_of(env, "/dashboard/messages")
    assert f'action="/dashboard/messages/{failed}/retry"' in html
    assert f'action="/dashboard/messages/{doubt}/retry"' in html
    assert f'action="/dashboard/messages/{sent}/retry"' not in html
    assert_csrf_refused(env, f"/dashboard/messages/{doubt}/retry")
    conn = env.app.extensions["kanal"].db.conn()
    assert store.get(conn, doubt).state == "in_doubt"  # type: ignore[union-attr]
    r = post(env, f"/dashboard/messages/{doubt}/retry", csrf, back="/dashboard/messages")
    assert r.status_code == 303
    assert f"Outbox row {doubt} is queued again" in html_of(env, r.headers["Location"])
    # A failed row is queued again only when the form says so (as `--failed`).
    r = post(env, f"/dashboard/messages/{failed}/retry", csrf)
    assert r.status_code == 409 and "only in_doubt rows" in r.get_data(as_text=True)
    r = post(env, f"/dashboard/messages/{failed}/retry", csrf, failed="1",
             back="https://evil.example/")
    assert r.status_code == 303 and r.headers["Location"].startswith("/dashboard/messages?")
    r = post(env, f"/dashboard/messages/{sent}/retry", csrf, failed="1")
    assert r.status_code == 409 and "is sent" in r.get_data(as_text=True)
    states = {i: store.get(conn, i).state for i in (failed, doubt, sent)}  # type: ignore
    assert states == {failed: "queued", doubt: "queued", sent: "sent"}
    assert store.get(conn, doubt).reason == "queued again by hand"  # type: ignore


def test_previews_per_language_and_channel(env: App) -> None:
    pid = alice(env)
    signed_in(env)
    html = html_of(env, f"/dashboard/messages/preview?person={pid}&message=cart")
    shown = ids_of(html, "preview")
    assert shown == ["en/email", "en/push", "en/sms", "en/webhook", "sv/email", "sv/push",
                     "sv/sms", "sv/webhook"]
    assert "Hi there, your cart" in html and "Hej there" in html
    assert "alice@example.com" in html and "+46701234567" in html
    html_of(env, "/dashboard/messages/preview?person=999&message=cart", 404)
    html_of(env, f"/dashboard/messages/preview?person={pid}&message=nope", 404)
    form = html_of(env, "/dashboard/messages/preview")
    assert "<option>cart</option>" in form
