"""Web push: encryption (RFC 8291) and VAPID (RFC 8292) checked by a local push-service
stand-in — a real HTTP server on loopback — that decrypts every payload with its own
implementation (cryptography's primitives, written here, not the library that
encrypted it); subscriptions are made in Python the way a browser makes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from onsite_util import process
from webpush_util import (
    SUBJECT,
    VAPID_KEY,
    VAPID_PUBLIC,
    Browser,
    PushService,
    new_browser,
    push_service_on_loopback,
    verify_vapid,
)

from kanal_collector.channels import OutgoingMessage, PermanentError, RecipientGone
from kanal_collector.channels.base import TransientError
from kanal_collector.channels.webpush import (
    BadSubscription,
    WebPushChannel,
    parse_subscription,
    subscription_identity,
)
from kanal_collector.messages import enqueue
from kanal_collector.store import identities as identity_store
from kanal_collector.store.db import transaction


@pytest.fixture
def push_service() -> Iterator[PushService]:
    with push_service_on_loopback() as service:
        yield service


def channel(**more: Any) -> WebPushChannel:
    settings = {"vapid_private_key": VAPID_KEY, "subject": SUBJECT, "allow_private": True,
                "push_hosts": ["127.0.0.1"], "ttl": 3600, **more}
    return WebPushChannel(settings)


def outgoing(browser: Browser, **content: Any) -> OutgoingMessage:
    return OutgoingMessage(
        outbox_id=7, idempotency_key="k7", recipient=subscription_identity(
            parse_subscription(browser.subscription, hosts=("127.0.0.1",))),
        content=content or {"title": "Back in stock", "body": "The blue mug is back",
                            "data": {"url": "https://shop.example/mug"}})


def test_payload_is_encrypted_for_the_browser_and_signed(push_service: PushService) -> None:
    browser = new_browser(f"{push_service.url}/push/abc")
    push = channel()
    try:
        result = push.send(outgoing(browser))
    finally:
        push.close()
    assert result.provider_id == f"{push_service.url}/m/1"
    [(path, headers, body)] = push_service.received
    assert path == "/push/abc"
    assert headers["content-encoding"] == "aes128gcm" and headers["ttl"] == "3600"
    assert headers["urgency"] == "normal"
    verify_vapid(headers["authorization"], push_service.url)
    assert b"blue mug" not in body  # encrypted …
    assert json.loads(browser.decrypt(body)) == {  # … for this browser only
        "title": "Back in stock", "body": "The blue mug is back",
        "url": "https://shop.example/mug", "tag": "kanal-7"}
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):  # another browser's keys can't read it
        new_browser(browser.endpoint).decrypt(body)


@pytest.mark.parametrize("status, error", [(410, RecipientGone), (404, RecipientGone),
                                           (429, TransientError), (500, TransientError),
                                           (400, PermanentError)])
def test_push_service_answers(push_service: PushService, status: int,
                              error: type[Exception]) -> None:
    push_service.status = status
    push = channel()
    try:
        with pytest.raises(error):
            push.send(outgoing(new_browser(f"{push_service.url}/push/x")))
    finally:
        push.close()


def test_loopback_needs_allow_private(push_service: PushService) -> None:
    push = channel(allow_private=False)
    try:
        with pytest.raises(PermanentError, match="refused"):
            push.send(outgoing(new_browser(f"{push_service.url}/push/x")))
    finally:
        push.close()
    assert push_service.received == []


@pytest.mark.parametrize("endpoint, why", [
    ("https://evil.example/push", "not a known push service"),
    ("http://fcm.googleapis.com/fcm/send/x", "must be https"),
    ("javascript:alert(1)", "must be https"),
])
def test_subscriptions_must_point_at_a_push_service(endpoint: str, why: str) -> None:
    browser = new_browser(endpoint)
    with pytest.raises(BadSubscription, match=why):
        parse_subscription(browser.subscription, hosts=("fcm.googleapis.com",))
    good = new_browser("https://fcm.googleapis.com/fcm/send/abc").subscription
    assert parse_subscription(good, hosts=("fcm.googleapis.com",))["endpoint"].startswith(
        "https://fcm")
    short = dict(good, keys={"p256dh": good["keys"]["p256dh"][:40], "auth": "AAAA"})
    with pytest.raises(BadSubscription, match="p256dh"):
        parse_subscription(short, hosts=("fcm.googleapis.com",))


PUSH_MESSAGE = """\
push:
  title: "Hi {{ traits.first_name | default('there') }}"
  body: The blue mug is back
  data: {url: "https://shop.example/mug"}
"""


def test_subscribe_send_click_and_gone(onsite_env: Any, push_service: PushService) -> None:
    env = onsite_env(
        messages={"restock": PUSH_MESSAGE}, campaigns={},
        channels={"webpush": {"vapid_private_key": VAPID_KEY, "subject": SUBJECT,
                              "allow_private": True, "push_hosts": ["127.0.0.1"]}})
    site = env.client.get(f"/onsite/site/{env.keys['public']}.json").get_json()
    assert site["push"] == {"key": VAPID_PUBLIC, "sw": "/kanal-sw.js"}
    browser = new_browser(f"{push_service.url}/push/anna")
    body = {"k": env.keys["public"], "a": "anna-phone", "subscription": browser.subscription}
    assert env.client.post("/onsite/push", json=body).status_code == 200
    elsewhere = dict(body, subscription=new_browser("https://evil.example/x").subscription)
    assert env.client.post("/onsite/push", json=elsewhere).status_code == 400
    process(env)
    conn = env.app.extensions["kanal"].db.conn()
    pid = identity_store.identity_profile(conn, "anonymous_id", "anna-phone")
    assert pid is not None
    assert [k for k, _ in identity_store.profile_identities(conn, pid)] == [
        "anonymous_id", "webpush"]
    # A browser a claim linked to an identified person may not add a recipient there.
    env.client.post("/v1/identify", json={"userId": "bob", "anonymousId": "x",
                                          "traits": {"email": "bob@example.com"}},
                    auth=(env.keys["secret"], ""))
    env.client.post("/v1/identify", json={"userId": "bob", "anonymousId": "mallory"},
                    auth=(env.keys["public"], ""))
    process(env)
    mallory = dict(body, a="mallory", subscription=new_browser(
        f"{push_service.url}/push/mallory").subscription)
    r = env.client.post("/onsite/push", json=mallory)
    assert (r.status_code, r.get_json()["code"]) == (403, "verify_first")

    dispatcher = next(w for w, _ in env.app.extensions["kanal.supervisor"].workers
                      if type(w).__name__ == "Dispatcher")

    def send_one(key: str) -> int:
        with transaction(conn):
            outbox_id = enqueue(conn, profile_id=pid, message="restock", channel="webpush",
                                idempotency_key=key, kind="transactional",
                                now=env.clock.now(), channels=dispatcher.channels,
                                catalog=dispatcher.catalog)
        dispatcher.drain()
        return outbox_id

    first = send_one("restock-1")
    assert env.rows("SELECT state FROM outbox WHERE id = ?", first)[0][0] == "sent"
    [(_, headers, payload)] = push_service.received
    note = json.loads(browser.decrypt(payload))
    assert note["title"] == "Hi there" and note["body"] == "The blue mug is back"
    # The URL the notification opens is a tracked link to the message's page.
    click = note["url"].removeprefix("http://127.0.0.1:8000")
    assert click.startswith("/c/")
    r = env.client.get(click, headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) "
                                                     "Chrome/120.0 Mobile Safari/537.36"})
    assert (r.status_code, r.headers["Location"]) == (302, "https://shop.example/mug")
    clicked = [e for e in env.events() if e["event"] == "Push Notification Clicked"]
    assert len(clicked) == 1 and clicked[0]["origin"] == "push"
    assert clicked[0]["body"]["properties"]["outbox_id"] == first
    assert "bot" not in clicked[0]["body"]["properties"]
    # The browser dropped the subscription: the push service answers 410, and Kanal
    # forgets it, so nothing is sent to it again.
    push_service.status = 410
    gone = send_one("restock-2")
    state, reason = env.rows("SELECT state, reason FROM outbox WHERE id = ?", gone)[0]
    assert state == "failed" and "gone" in reason
    process(env)
    assert [k for k, _ in identity_store.profile_identities(conn, pid)] == ["anonymous_id"]
    third = send_one("restock-3")
    assert env.rows("SELECT state, reason FROM outbox WHERE id = ?", third)[0] == (
        "skipped", "no recipient")
