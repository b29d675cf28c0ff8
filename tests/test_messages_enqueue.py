"""The enqueue API: one row per key, preferred channel with fallbacks, checks at enqueue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from messages_util import World

from kanal_collector.config import Config
from kanal_collector.messages import enqueue
from kanal_collector.messages.eligibility import Policy
from kanal_collector.store import outbox
from kanal_collector.store.db import transaction


def test_same_key_never_makes_a_second_row(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    first = world.enqueue(pid, "journey:cart:run1:step1")
    again = world.enqueue(pid, "journey:cart:run1:step1", channel="sms", message="receipt")
    assert again == first
    assert len(outbox.listing(world.conn)) == 1
    row = world.row(first)
    assert (row.state, row.channel, row.message, row.topic) == ("queued", "email", "cart",
                                                                "cart")


def test_enqueue_runs_in_the_callers_transaction(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    conn = world.conn
    with pytest.raises(RuntimeError), transaction(conn):
        enqueue(conn, profile_id=pid, message="cart", channel="email",
                idempotency_key="k1", kind="marketing")
        assert conn.in_transaction
        raise RuntimeError("the journey step failed")
    assert outbox.listing(conn) == []
    assert not conn.in_transaction


def test_preferred_channel_with_fallbacks(world: World) -> None:
    # Engages on SMS (so SMS is preferred) but has no phone: the email fallback is used.
    no_phone = world.person("u1", email="a@example.com")
    world.track("u1", "SMS Link Clicked")
    assert world.row(world.enqueue(no_phone, "k1", channel="preferred",
                                   fallbacks=["push", "email"])).channel == "email"
    with_phone = world.person("u2", email="b@example.com", phone="+46701234567",
                              subscriptions={"sms": True})
    world.track("u2", "SMS Replied")
    row = world.row(world.enqueue(with_phone, "k2", channel="preferred",
                                  fallbacks=["email"]))
    assert (row.channel, row.candidates) == ("sms", ["sms", "email"])
    # No preferred channel at all: straight to the fallbacks.
    fresh = world.person("u3", phone="+46701234568", subscriptions={"sms": True})
    assert world.row(world.enqueue(fresh, "k3", channel="preferred",
                                   fallbacks=["email", "sms"])).channel == "sms"


def test_unsubscribed_channel_falls_back_and_nothing_left_is_skipped(world: World) -> None:
    pid = world.person("u1", email="a@example.com", phone="+46701234567",
                       subscriptions={"email": False, "sms": True})
    assert world.row(world.enqueue(pid, "k1", channel="email",
                                   fallbacks=["sms"])).channel == "sms"
    skipped = world.row(world.enqueue(pid, "k2", channel="email"))
    assert (skipped.state, skipped.reason, skipped.channel) == ("skipped", "unsubscribed",
                                                                "email")
    # Transactional messages ignore unsubscribes.
    receipt = world.row(world.enqueue(pid, "k3", message="receipt", kind="transactional"))
    assert receipt.state == "queued"


def test_marketing_sms_needs_an_opt_in_by_default(world: World) -> None:
    """Issue 13: a phone number alone is no permission to text marketing."""
    pid = world.person("u1", email="a@example.com", phone="+46701234567")
    row = world.row(world.enqueue(pid, "k1", channel="sms"))
    assert (row.state, row.reason) == ("skipped", "no opt-in")
    assert world.row(world.enqueue(pid, "k2", channel="sms", fallbacks=["email"])
                     ).channel == "email"
    receipt = world.row(world.enqueue(pid, "k3", message="receipt", channel="sms",
                                      kind="transactional"))
    assert receipt.state == "queued"  # transactional SMS needs none
    # A public key can't opt anyone in (it could unsubscribe them: that sends less).
    world.log.add("identify", user_id="u1", traits={"subscriptions": {"sms": True}})
    world.log.add("track", event="Subscribed", user_id="u1", properties={"channel": "sms"})
    world.log.process()
    assert world.row(world.enqueue(pid, "k4", channel="sms")).reason == "no opt-in"
    world.track("u1", "Subscribed", channel="sms")  # the shop's backend (a secret key)
    assert world.row(world.enqueue(pid, "k5", channel="sms")).state == "queued"
    world.log.add("track", event="Unsubscribed", user_id="u1", properties={"channel": "sms"})
    world.log.process()
    assert world.row(world.enqueue(pid, "k6", channel="sms")).reason == "unsubscribed"


def test_the_opt_in_setting(tmp_path: Path) -> None:
    assert Policy.from_config(Config(sections={})).opt_in == ("sms",)
    assert Policy.from_config(Config(sections={"messages": {"opt_in": []}})).opt_in == ()
    with pytest.raises(ValueError, match="opt_in: a list"):
        Policy.from_config(Config(sections={"messages": {"opt_in": "sms"}}))


def test_topic_unsubscribe_and_consent(world: World) -> None:
    pid = world.person("u1", email="a@example.com", subscriptions={"email": {"cart": False}})
    assert world.row(world.enqueue(pid, "k1")).reason == "unsubscribed"
    other = world.person("u2", email="b@example.com", consent={"marketing": False})
    assert world.row(world.enqueue(other, "k2")).reason == "no consent"


def test_no_recipient_no_profile_no_content(world: World) -> None:
    pid = world.person("u1", first_name="Kim")
    assert world.row(world.enqueue(pid, "k1")).reason == "no recipient"
    missing = world.row(world.enqueue(9999, "k2"))
    assert (missing.state, missing.reason) == ("skipped", "no profile")
    has_email = world.person("u2", email="b@example.com")
    # The receipt has no push content.
    row = world.row(world.enqueue(has_email, "k3", message="receipt", channel="push",
                                  kind="transactional"))
    assert (row.state, row.reason) == ("skipped", "no content")


def test_marketing_definition_wins_and_send_at_delays(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    later = datetime(2030, 1, 1, tzinfo=UTC)
    row = world.row(world.enqueue(pid, "k1", kind="transactional", send_at=later,
                                  data={"order": "o-1"}))
    assert row.kind == "marketing"
    assert row.next_attempt_at == int(later.timestamp() * 1000)
    assert row.data == {"order": "o-1"}


@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "promo"}, "kind must be transactional or marketing"),
    ({"idempotency_key": ""}, "idempotency_key must be a non-empty string"),
    ({"channel": "fax"}, "no channel named fax"),
    ({"fallbacks": ["email", "pigeon"]}, "no channel named pigeon"),
    ({"send_at": datetime(2030, 1, 1)}, "send_at must be an aware datetime"),
])
def test_bad_arguments(world: World, kwargs: dict[str, object], message: str) -> None:
    pid = world.person("u1", email="a@example.com")
    args: dict[str, object] = {"profile_id": pid, "message": "cart", "channel": "email",
                               "idempotency_key": "k", "kind": "marketing", **kwargs}
    with pytest.raises(ValueError, match=message), transaction(world.conn) as conn:
        enqueue(conn, **args)  # type: ignore[arg-type]


def test_without_channels_or_catalog_the_builtins_are_assumed(world: World) -> None:
    pid = world.person("u1", phone="+46701234567")
    with transaction(world.conn) as conn:
        oid = enqueue(conn, profile_id=pid, message="anything", channel="email",
                      fallbacks=["sms"], idempotency_key="k", kind="transactional")
    assert world.row(oid).channel == "sms"
