"""kanal.js in headless Chromium against a real collector process.

Each test serves shop pages from their own origin (the `shop` fixture), loads kanal.js
through the loader tag from the collector's `/kanal.js`, and reads what the collector
stored in its `events` table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
]

UTM = "utm_source=newsletter&utm_medium=email&utm_campaign=spring&utm_term=shoes&utm_content=hero"


LOADER = (Path(__file__).resolve().parents[2] / "js_snippet" / "loader.min.js").read_text()


def loader_tag(write_key: str, host: str, options: dict[str, Any] | None = None) -> str:
    """The loader snippet as a shop pastes it, with a key, a host and options filled in."""
    js = (
        LOADER.strip()
        .replace('"WRITE_KEY"', json.dumps(write_key))
        .replace('"https://kanal.example.com"', json.dumps(host))
        .replace(",{})", "," + json.dumps(options or {}) + ")")
    )
    return f"<script>{js}</script>"


def wait_until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy; return that (or the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def tag(collector: Any, **options: Any) -> str:
    return loader_tag(collector.public_key, collector.url, options)


def cookies(context: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in context.cookies()}


def storage(page: Any) -> dict[str, Any]:
    """What the page's origin keeps in localStorage and sessionStorage."""
    kept: dict[str, Any] = page.evaluate(
        "() => ({local: Object.assign({}, localStorage),"
        " session: Object.assign({}, sessionStorage)})"
    )
    return kept


def quiet(collector: Any, count: int, page: Any, ms: int = 1500) -> list[dict[str, Any]]:
    """Let the page run for `ms`, then check that exactly `count` events are stored."""
    page.wait_for_timeout(ms)
    events: list[dict[str, Any]] = collector.events()
    assert len(events) == count, [e["body"] for e in events]
    return events


def wait_loaded(page: Any) -> None:
    page.wait_for_function("() => window.kanal && window.kanal.track")


def sent_message_ids(page: Any) -> list[str]:
    """Collect the messageIds of every batch the page got a 200 for (fills as it goes)."""
    ids: list[str] = []

    def on_response(response: Any) -> None:
        if "/v1/b" in response.url and response.request.method == "POST":
            if response.status == 200:
                body = json.loads(response.request.post_data or "{}")
                ids.extend(m["messageId"] for m in body.get("batch", []))

    page.on("response", on_response)
    return ids


def test_page_view_with_utm_and_referrer(
    collector: Any, shop: Any, page: Any, context: Any
) -> None:
    url = shop.add("/landing", tag=tag(collector), title="Spring sale")
    page.goto(f"{url}?{UTM}", referer="https://search.example/?q=shoes")
    [event] = collector.wait_for_events(1)
    body = event["body"]
    assert event["type"] == "page"
    assert event["origin"] == "web"
    assert event["key_kind"] == "public"
    ctx = body["context"]
    assert ctx["page"] == {
        "path": "/landing",
        "referrer": "https://search.example/?q=shoes",
        "search": f"?{UTM}",
        "title": "Spring sale",
        "url": f"{url}?{UTM}",
    }
    assert ctx["campaign"] == {
        "source": "newsletter", "medium": "email", "name": "spring",
        "term": "shoes", "content": "hero",
    }
    assert body["properties"]["path"] == "/landing"
    assert ctx["library"]["name"] == "kanal.js"
    assert ctx["library"]["version"]
    assert ctx["userAgent"] == page.evaluate("navigator.userAgent")
    assert ctx["locale"] == page.evaluate("navigator.language")
    assert ctx["timezone"] == page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    assert body["timestamp"].endswith("Z") and body["sentAt"].endswith("Z")
    uuid.UUID(body["messageId"])
    # The anonymous id lives in a first-party cookie on the shop's origin, and storage.
    assert cookies(context)["kanal_aid"] == event["anonymous_id"] == body["anonymousId"]
    assert storage(page)["local"]["kanal_aid"] == event["anonymous_id"]

    # The same visitor on the next page load.
    page.goto(url)
    events = collector.wait_for_events(2)
    assert events[1]["anonymous_id"] == event["anonymous_id"]
    assert "campaign" not in events[1]["body"]["context"]


def test_spa_navigation_gives_page_views(collector: Any, shop: Any, page: Any) -> None:
    url = shop.add("/app", tag=tag(collector))
    page.goto(url)
    collector.wait_for_events(1)
    page.evaluate("history.pushState({}, '', '/app/product/42')")
    events = collector.wait_for_events(2)
    assert [e["body"]["context"]["page"]["path"] for e in events] == ["/app", "/app/product/42"]
    assert events[1]["body"]["context"]["page"]["referrer"] == url
    assert events[1]["body"]["properties"]["url"] == shop.url + "/app/product/42"

    # A changed query on the same path (filters, stripped utm_*) is not a new page view.
    page.evaluate("history.replaceState({}, '', '/app/product/42?color=red')")
    quiet(collector, 2, page, 800)

    page.go_back()  # popstate
    events = collector.wait_for_events(3)
    assert events[2]["body"]["context"]["page"]["path"] == "/app"
    assert len({e["anonymous_id"] for e in events}) == 1


@pytest.mark.parametrize("how", ["navigate", "close"])
def test_event_just_before_the_page_closes_arrives(
    collector: Any, shop: Any, context: Any, how: str
) -> None:
    # A long flush interval: only the page-hide path can deliver the event in time.
    url = shop.add("/cart", tag=tag(collector, flushInterval=60000))
    shop.add("/elsewhere", tag="")
    page = context.new_page()
    page.goto(url)
    wait_loaded(page)
    page.evaluate("kanal('track', 'Checkout Started', {value: 42, currency: 'EUR'})")
    if how == "navigate":
        page.goto(shop.url + "/elsewhere")
    else:
        page.close(run_before_unload=True)
    events = collector.wait_for_events(2)
    assert sorted(e["type"] for e in events) == ["page", "track"]
    [track] = [e for e in events if e["type"] == "track"]
    assert track["event"] == "Checkout Started"
    assert track["body"]["properties"] == {"value": 42, "currency": "EUR"}


def test_offline_then_online_delivers_once(
    collector: Any, shop: Any, page: Any, context: Any
) -> None:
    url = shop.add("/shop", tag=tag(collector, flushInterval=100))
    sent = sent_message_ids(page)
    page.goto(url)
    collector.wait_for_events(1)

    context.set_offline(True)
    for i in range(3):
        page.evaluate(f"kanal('track', 'Product Added', {{sku: 'SKU-{i}'}})")
    page.wait_for_function("() => JSON.parse(localStorage.kanal_q || '[]').length == 3")
    quiet(collector, 1, page, 500)

    context.set_offline(False)
    events = collector.wait_for_events(4)
    assert [e["body"]["properties"].get("sku") for e in events[1:]] == [
        "SKU-0", "SKU-1", "SKU-2",
    ]
    quiet(collector, 4, page, 1500)
    page.wait_for_function("() => !localStorage.kanal_q")
    # Exactly once on the wire too, not only after the collector's dedupe.
    assert len(sent) == 4 and max(Counter(sent).values()) == 1


def test_failed_send_is_retried_once(collector: Any, shop: Any, page: Any) -> None:
    url = shop.add("/shop", tag=tag(collector, flushInterval=100))
    sent = sent_message_ids(page)
    failures: list[str] = []

    def flaky(route: Any) -> None:
        # The collector is "down" for the first two attempts.
        if len(failures) < 2:
            failures.append(route.request.url)
            route.fulfill(status=503, body='{"code":"unavailable","message":"down"}')
        else:
            route.continue_()

    page.route("**/v1/batch", flaky)
    page.goto(url)
    page.wait_for_function("() => JSON.parse(localStorage.kanal_q || '[]').length == 1")
    # Backoff: about 1-2 s, then 2-4 s. Keep the page busy so routes are served.
    events = wait_until(lambda: page.wait_for_timeout(100) or collector.events(), timeout=20)
    assert len(events) == 1 and events[0]["type"] == "page"
    page.wait_for_function("() => !localStorage.kanal_q")
    assert len(failures) == 2 and sent == [events[0]["body"]["messageId"]]


def test_stored_queue_is_sent_by_one_tab(collector: Any, shop: Any, context: Any) -> None:
    url = shop.add("/shop", tag=tag(collector, autoPage=False))
    shop.add("/blank", tag="")
    stored = [
        {
            "type": "track", "event": "Product Viewed", "messageId": str(uuid.uuid4()),
            "anonymousId": "anon-1", "properties": {"n": i},
            "timestamp": "2025-01-01T00:00:00.000Z", "context": {},
        }
        for i in range(5)
    ]
    holder = context.new_page()
    holder.goto(shop.url + "/blank")
    holder.evaluate("q => localStorage.kanal_q = JSON.stringify(q)", stored)
    # Another tab is in the middle of sending the stored queue: it holds the lock.
    holder.evaluate(
        "() => new Promise(ok => navigator.locks.request('kanal_q', () => new Promise(r => {"
        " window.release = r; ok(); })))"
    )
    tabs = [context.new_page() for _ in range(2)]
    sent = [sent_message_ids(t) for t in tabs]
    for t in tabs:
        t.goto(url)
        wait_loaded(t)
    quiet(collector, 0, tabs[0], 1500)

    holder.evaluate("window.release()")
    events = wait_until(lambda: tabs[0].wait_for_timeout(100) or collector.events(), timeout=20)
    tabs[1].wait_for_function("() => !localStorage.kanal_q", timeout=20000)
    quiet(collector, 5, tabs[0], 1000)
    assert sorted(e["body"]["properties"]["n"] for e in events) == list(range(5))
    all_sent = sent[0] + sent[1]
    assert sorted(all_sent) == sorted(str(m["messageId"]) for m in stored)


def test_opt_in_sends_and_stores_nothing_before_consent(
    collector: Any, shop: Any, page: Any, context: Any
) -> None:
    url = shop.add("/shop", tag=tag(collector, requireConsent=True))
    page.goto(url)
    wait_loaded(page)
    page.evaluate("kanal('track', 'Product Viewed', {sku: 'A1'})")
    page.evaluate("kanal('identify', 'u1', {plan: 'pro'})")
    quiet(collector, 0, page)
    assert context.cookies() == []
    assert storage(page) == {"local": {}, "session": {}}

    page.evaluate("kanal('consent', true)")
    events = collector.wait_for_events(3)
    assert sorted(e["type"] for e in events) == ["identify", "page", "track"]
    assert cookies(context)["kanal_consent"] == "1"
    assert cookies(context)["kanal_aid"] == events[0]["anonymous_id"]

    # The decision is remembered on the next page.
    page.reload()
    events = collector.wait_for_events(4)
    assert events[3]["type"] == "page" and events[3]["user_id"] == "u1"


def test_opt_out(collector: Any, shop: Any, page: Any, context: Any) -> None:
    url = shop.add("/shop", tag=tag(collector))
    page.goto(url)
    collector.wait_for_events(1)
    assert "kanal_aid" in cookies(context)
    page.evaluate("kanal.optOut(); kanal.track('Product Viewed')")
    assert "kanal_aid" not in cookies(context)
    assert cookies(context)["kanal_consent"] == "0"
    assert "kanal_aid" not in storage(page)["local"]
    page.reload()
    wait_loaded(page)
    page.evaluate("kanal('track', 'Product Viewed')")
    quiet(collector, 1, page)


def test_calls_queued_before_the_script_loaded_arrive(
    collector: Any, shop: Any, page: Any
) -> None:
    url = shop.add(
        "/shop",
        tag=tag(collector),
        after=(
            "kanal('identify', 'u42', {plan: 'pro'});"
            "kanal('track', 'Product Added', {sku: 'A1', price: 9.5});"
            "window.loadedEarly = !!kanal.track;"
        ),
    )
    page.goto(url)
    assert page.evaluate("window.loadedEarly") is False
    events = collector.wait_for_events(3)
    assert [e["type"] for e in events] == ["identify", "track", "page"]
    assert {e["user_id"] for e in events} == {"u42"}
    assert events[0]["body"]["traits"] == {"plan": "pro"}
    assert events[1]["event"] == "Product Added"
    # Once loaded, the plain global API.
    page.evaluate("kanal.track('Cart Viewed', {items: 1})")
    events = collector.wait_for_events(4)
    assert events[3]["event"] == "Cart Viewed" and events[3]["user_id"] == "u42"


def user_hash(key: str, user_id: str) -> str:
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("kind", "verified"), [("good", 1), ("forged", 0), ("other user", 0), ("none", 0)]
)
def test_identify_verified_only_with_a_good_user_hash(
    collector: Any, shop: Any, page: Any, kind: str, verified: int
) -> None:
    # What the shop's backend renders into the page for its logged-in customer.
    userhash = {
        "good": user_hash(collector.secret_key, "u123"),
        "forged": user_hash("not-the-secret-key", "u123"),
        "other user": user_hash(collector.secret_key, "u999"),
        "none": None,
    }[kind]
    options = json.dumps({"userHash": userhash} if userhash else {})
    url = shop.add(
        "/account",
        tag=tag(collector),
        after=f"kanal('identify', 'u123', {{email: 'a@b.c'}}, {options})",
    )
    posted: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if "/v1/b" in request.url:
            posted.extend(json.loads(request.post_data or "{}")["batch"])

    page.on("request", on_request)
    page.goto(url)
    events = collector.wait_for_events(2)
    [identify] = [e for e in events if e["type"] == "identify"]
    assert identify["user_id"] == "u123"
    assert identify["body"]["traits"] == {"email": "a@b.c"}
    assert identify["verified"] == verified
    # On the wire; the collector need not keep the hash in the stored body.
    # (Playwright delivers page events while the test calls into it: tick the page.)
    [sent] = wait_until(
        lambda: page.wait_for_timeout(50) or [m for m in posted if m["type"] == "identify"]
    )
    assert sent["context"].get("userHash") == userhash
    # And on the profile: only a verified identify attaches the email as an identity.
    profile = wait_until(lambda: _profile(collector, "u123"))
    emails = [i["value"] for i in profile["identities"] if i["kind"] == "email"]
    assert emails == (["a@b.c"] if verified else [])


def _profile(collector: Any, user_id: str) -> dict[str, Any] | None:
    response = requests.get(f"{collector.url}/api/profiles/lookup", params={"id": user_id},
                            headers={"Authorization": f"Bearer {collector.admin_key}"},
                            timeout=5)
    return response.json() if response.status_code == 200 else None


SIGNALS = {
    "DNT": "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
    "GPC": "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
}


@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_dnt_and_gpc_honoured_when_configured(
    collector: Any, shop: Any, browser: Any, signal: str
) -> None:
    honouring = shop.add("/honours", tag=tag(collector, respectDNT=True))
    ignoring = shop.add("/ignores", tag=tag(collector))
    ctx = browser.new_context()
    try:
        ctx.add_init_script(SIGNALS[signal])
        page = ctx.new_page()
        page.goto(honouring)
        wait_loaded(page)
        page.evaluate("kanal('track', 'Product Viewed')")
        quiet(collector, 0, page)
        assert ctx.cookies() == []
        assert storage(page) == {"local": {}, "session": {}}
        # Not configured: the signal alone does not switch tracking off.
        page.goto(ignoring)
        assert collector.wait_for_events(1)[0]["type"] == "page"
    finally:
        ctx.close()


def test_reset_clears_ids(collector: Any, shop: Any, page: Any, context: Any) -> None:
    url = shop.add("/shop", tag=tag(collector), after="kanal('identify', 'u7')")
    page.goto(url)
    before = collector.wait_for_events(2)
    assert cookies(context)["kanal_uid"] == "u7"
    page.evaluate("kanal('reset'); kanal('track', 'Logged Out')")
    events = collector.wait_for_events(3)
    after = events[2]
    assert after["event"] == "Logged Out"
    assert after["user_id"] is None and "userId" not in after["body"]
    assert after["anonymous_id"] != before[0]["anonymous_id"]
    assert "kanal_uid" not in cookies(context)
    assert cookies(context)["kanal_aid"] == after["anonymous_id"]
    assert "kanal_uid" not in storage(page)["local"]


def test_cookieless_mode(collector: Any, shop: Any, page: Any, context: Any) -> None:
    url = shop.add("/shop", tag=tag(collector, cookieless=True))
    page.goto(url)
    [first] = collector.wait_for_events(1)
    assert context.cookies() == []
    kept = storage(page)
    assert kept["local"] == {} and kept["session"]["kanal_aid"] == first["anonymous_id"]
    page.reload()  # same tab: same session
    events = collector.wait_for_events(2)
    assert events[1]["anonymous_id"] == first["anonymous_id"]
    fresh = context.new_page()  # a new tab is a new session
    fresh.goto(url)
    events = collector.wait_for_events(3)
    assert events[2]["anonymous_id"] != first["anonymous_id"]
