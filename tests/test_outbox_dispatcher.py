"""The dispatcher: claims, sends, retries, rate limits, checks again at send time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from messages_util import World, channel, permanent, transient

from kanal_collector.channels.smtp import message_id
from kanal_collector.messages import Dispatcher, Settings, provider_key
from kanal_collector.profiles.step import identity_hash
from kanal_collector.store import meta, outbox
from kanal_collector.store import privacy as privacy_store
from kanal_collector.store import timeline as timeline_store
from kanal_collector.store.db import transaction


def email(world: World) -> Any:
    return world.channels[0]


def test_send_records_sent_and_a_delivery_event(world: World) -> None:
    pid = world.person("u1", email="A@Example.com", first_name="Ann", language="sv-SE")
    oid = world.enqueue(pid, "k1", journey="cart", step="2")
    assert world.dispatcher.run_once() == 1
    (sent,) = email(world).sent
    assert sent.recipient == "a@example.com"
    assert sent.content["subject"] == "Hej Ann"
    installation = meta.get(world.conn, meta.INSTALLATION_KEY)
    assert installation is not None and len(installation) == 32
    assert sent.idempotency_key == provider_key(world.row(oid), installation)
    assert sent.metadata["journey"] == "cart"
    row = world.row(oid)
    assert (row.state, row.provider_id, row.language, row.attempts) == (
        "sent", f"prov-{oid}", "sv", 1)
    (event,) = world.events("Email Delivered")
    assert (event["origin"], event["key_kind"]) == ("email", "kanal")
    props = event["body"]["properties"]
    assert props["outbox_id"] == oid and props["message"] == "cart"
    assert props["journey"] == "cart" and props["channel"] == "email"
    assert event["body"]["userId"] == "u1"
    # The event lands on the person's timeline once the processor reads it.
    world.log.process()
    assert any(e.event == "Email Delivered" for e in timeline_store.timeline(world.conn, pid))
    assert world.dispatcher.run_once() == 0


def test_nothing_is_sent_before_send_at(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1", send_at=world.clock.now() + 3600)
    assert world.dispatcher.run_once() == 0
    world.clock.advance(3600)
    assert world.dispatcher.run_once() == 1
    assert world.row(oid).state == "sent"


def test_transient_errors_back_off_then_succeed(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    email(world).failures = [transient(), transient()]
    oid = world.enqueue(pid, "k1")
    assert world.dispatcher.run_once() == 1
    row = world.row(oid)
    assert (row.state, row.attempts) == ("queued", 1)
    first_wait = row.next_attempt_at - world.clock.now() * 1000
    assert 15_000 <= first_wait <= 30_000  # base 30 s with jitter in [0.5, 1]
    assert world.dispatcher.run_once() == 0  # not due yet
    world.clock.advance(30)
    assert world.dispatcher.run_once() == 1
    row = world.row(oid)
    second_wait = row.next_attempt_at - world.clock.now() * 1000
    assert 30_000 <= second_wait <= 60_000  # doubled
    world.clock.advance(60)
    assert world.dispatcher.run_once() == 1
    row = world.row(oid)
    assert (row.state, row.attempts, len(email(world).sent)) == ("sent", 3, 1)


def test_retry_after_is_respected(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    email(world).failures = [transient(after=600)]
    oid = world.enqueue(pid, "k1")
    world.dispatcher.run_once()
    assert world.row(oid).next_attempt_at == int(world.clock.now() * 1000) + 600_000


def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    world = World(tmp_path / "k.db", max_attempts=3)
    try:
        pid = world.person("u1", email="a@example.com")
        email(world).failures = [transient() for _ in range(5)]
        oid = world.enqueue(pid, "k1")
        for _ in range(3):
            world.dispatcher.run_once()
            world.clock.advance(world.settings.backoff_max)
        row = world.row(oid)
        assert (row.state, row.attempts) == ("failed", 3)
        assert row.reason.startswith("gave up after 3 attempts")
        assert len(world.events("Email Bounced")) == 1
        assert world.dispatcher.run_once() == 0
    finally:
        world.close()


def test_keys_and_message_ids_are_unique_per_installation(tmp_path: Path) -> None:
    """Issue 13: two fresh databases both have journey 1, run 1, step 1; a provider (or a
    mailbox) shared by both must not take one's message for the other's copy."""
    keys = []
    for name in ("a", "b"):
        world = World(tmp_path / f"{name}.db")
        try:
            pid = world.person("u1", email="a@example.com")
            world.enqueue(pid, "journey:cart:1:1")
            assert world.dispatcher.run_once() == 1
            (sent,) = email(world).sent
            keys.append(sent.idempotency_key)
        finally:
            world.close()
    assert keys[0] != keys[1]
    assert message_id(keys[0], "shop.example") != message_id(keys[1], "shop.example")


def test_permanent_error_fails_at_once(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    email(world).failures = [permanent()]
    oid = world.enqueue(pid, "k1")
    world.dispatcher.run_once()
    row = world.row(oid)
    assert (row.state, row.reason) == ("failed", "permanent: 550 no such user")
    (bounce,) = world.events("Email Bounced")
    assert bounce["body"]["properties"]["reason"] == "permanent: 550 no such user"
    assert world.events("Email Delivered") == []


def test_rate_limit_per_channel(tmp_path: Path) -> None:
    world = World(tmp_path / "k.db", channels=[channel("email", rate_per_second=2),
                                               channel("sms", identity="phone")])
    try:
        for i in range(6):
            pid = world.person(f"u{i}", email=f"p{i}@example.com", phone=f"+4670123450{i}",
                               subscriptions={"sms": True})
            world.enqueue(pid, f"e{i}")
            world.enqueue(pid, f"s{i}", channel="sms")
        assert world.dispatcher.run_once() == 8  # 2 emails (burst 2), every sms
        assert world.dispatcher.run_once() == 0
        world.clock.advance(0.5)
        assert world.dispatcher.run_once() == 1
        world.clock.advance(1)
        assert world.dispatcher.run_once() == 2
        world.clock.advance(10)
        assert world.dispatcher.run_once() == 1  # the last one; the bucket caps at 2
        assert outbox.counts(world.conn) == {"sent": 12}
    finally:
        world.close()


def test_unsubscribe_after_enqueue_skips_marketing_not_transactional(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    promo = world.enqueue(pid, "k1")
    receipt = world.enqueue(pid, "k2", message="receipt", kind="transactional",
                            data={"order": "A-1"})
    world.track("u1", "Unsubscribed", channel="email")
    world.dispatcher.drain()
    assert (world.row(promo).state, world.row(promo).reason) == ("skipped", "unsubscribed")
    assert world.row(receipt).state == "sent"
    assert email(world).sent[0].content["subject"] == "Receipt A-1"


def test_topic_unsubscribe_and_consent_withdrawn_at_send_time(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    cart = world.enqueue(pid, "k1")
    world.track("u1", "Unsubscribed", channel="email", topic="cart")
    other = world.person("u2", email="b@example.com")
    second = world.enqueue(other, "k2")
    world.person("u2", consent={"marketing": False})
    world.dispatcher.drain()
    assert world.row(cart).reason == "unsubscribed"
    assert world.row(second).reason == "no consent"
    assert email(world).sent == []


def test_suppression_applies_to_transactional_too(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1", message="receipt", kind="transactional")
    conn = world.conn
    with transaction(conn):
        secret = privacy_store.suppression_secret(conn)
        privacy_store.add_suppressions(conn, [identity_hash(secret, "email", "a@example.com")],
                                       0)
    world.dispatcher.run_once()
    assert (world.row(oid).state, world.row(oid).reason) == ("skipped", "suppressed")
    assert email(world).sent == []


def test_forgotten_person_is_never_sent_to(world: World) -> None:
    from kanal_collector.profiles.privacy import forget

    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1", message="receipt", kind="transactional")
    forget(world.conn, "a@example.com", 0)
    assert world.row(oid) is None  # forgetting deletes what was queued for them too
    world.dispatcher.run_once()
    assert email(world).sent == []


def test_before_send_hooks_change_content_and_headers(world: World) -> None:
    seen: list[Any] = []

    def track_links(conn: Any, row: Any, content: dict[str, Any]) -> dict[str, Any]:
        assert conn.in_transaction
        seen.append((row.id, row.recipient, row.topic, row.language))
        content["html"] += '<img src="/o/1">'
        content["headers"] = {"List-Unsubscribe": "<https://x/u/1>"}
        return content

    world.dispatcher = world.make_dispatcher(before_send=[track_links])
    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1")
    world.dispatcher.run_once()
    (sent,) = email(world).sent
    assert sent.content["html"].endswith('<img src="/o/1">')
    assert "headers" not in sent.content
    assert sent.headers == {"Content-Language": "en", "List-Unsubscribe": "<https://x/u/1>"}
    assert seen == [(oid, "a@example.com", "cart", "en")]


def test_failing_hook_or_template_fails_the_row(world: World) -> None:
    def broken(conn: Any, row: Any, content: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("public_url")

    world.dispatcher = world.make_dispatcher(before_send=[broken])
    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1")
    world.dispatcher.run_once()
    row = world.row(oid)
    assert row.state == "failed" and "before_send failed" in row.reason
    assert row.send_token is None
    # A template error at send time: the message fails, nothing is sent.
    from kanal_collector.messages import parse_message

    world.catalog.messages["cart"] = parse_message(
        {"name": "cart", "email": {"subject": "{{ ''.__class__ }}", "text": "x"}})
    world.dispatcher = world.make_dispatcher()
    bad = world.enqueue(pid, "k2")
    world.dispatcher.run_once()
    assert world.row(bad).state == "failed" and "unsafe" in world.row(bad).reason
    assert email(world).sent == []


def test_rows_of_an_unconfigured_channel_fail_visibly(world: World) -> None:
    """Issue 13: a channel that isn't there fails its rows (with the reason) instead of
    keeping them queued forever; a channel switched off (enabled = false) keeps them."""
    pid = world.person("u1", email="a@example.com")
    from kanal_collector.messages import enqueue

    with transaction(world.conn) as conn:
        oid = enqueue(conn, profile_id=pid, message="cart", channel="email",
                      idempotency_key="k", kind="marketing", now=world.clock.now())
    world.dispatcher = Dispatcher(world.log.db, world.clock, {}, world.catalog,
                                  before_send=[], paused=["email"])
    assert world.dispatcher.run_once() == 0
    assert world.row(oid).state == "queued"
    world.dispatcher = Dispatcher(world.log.db, world.clock, {}, world.catalog,
                                  before_send=[])
    assert world.dispatcher.run_once() == 0
    row = world.row(oid)
    assert row.state == "failed"
    assert row.reason is not None and row.reason.startswith(
        "no channel named 'email' is configured")


def test_two_dispatchers_never_claim_one_row(tmp_path: Path) -> None:
    world = World(tmp_path / "k.db", batch_size=7)
    try:
        pids = [world.person(f"u{i}", email=f"p{i}@example.com") for i in range(5)]
        ids = [world.enqueue(pids[i % 5], f"k{i}") for i in range(150)]
        a = world.make_dispatcher(owner="a")
        b = world.make_dispatcher(owner="b")
        assert a.recover() == 0 and b.recover() == 0
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(d: Dispatcher) -> None:
            try:
                start.wait()
                d.drain()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(d,)) for d in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        a.close()
        b.close()
        assert errors == []
        sent = [m.outbox_id for m in email(world).sent]
        assert sorted(sent) == sorted(ids)  # each exactly once
        assert outbox.counts(world.conn) == {"sent": 150}
        owners = {r.claimed_by for r in outbox.listing(world.conn, limit=1000)}
        assert owners <= {"a", "b"}
    finally:
        world.close()


def test_backoff_is_capped_and_jittered(world: World) -> None:
    d = world.make_dispatcher(settings=Settings(backoff_base=10, backoff_max=100))
    waits = [d.backoff(n) for n in range(1, 12)]
    assert all(5 <= w <= 100 for w in waits)
    assert max(waits[-3:]) <= 100 and min(waits[-3:]) >= 50
    assert d.backoff(1, retry_after=1000) == 100
