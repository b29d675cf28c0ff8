"""The evaluator through the real processor, the timer worker and the outbox (fake clock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journeys_util import Journeys

from kanal_collector.journeys import Evaluator, TimerWorker
from kanal_collector.store import journeys as store
from kanal_collector.store import meta
from kanal_collector.store.events import BODY_COLUMNS, read_body

HOUR = 3600
DAY = 86_400
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "journeys"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Journeys]:
    j = Journeys(tmp_path)
    try:
        yield j
    finally:
        j.close()


def cart(env: Journeys) -> None:
    env.write("abandoned_cart", (EXAMPLES / "abandoned_cart.yaml").read_text())
    env.sync()


def steps_sent(env: Journeys) -> list[tuple[str, str]]:
    return [(r["step"], r["channel"]) for r in env.outbox()]


def test_abandoned_cart_end_to_end(env: Journeys) -> None:
    cart(env)
    env.person("ann", phone="+46701234567")
    env.track("ann", "Product Added", cart_id="c1", name="Red shoes")
    assert env.advance(59 * 60) == 0
    assert env.outbox() == []
    env.advance(61)
    rows = env.outbox()
    assert [(r["step"], r["channel"], r["message"]) for r in rows] == [
        ("cart_email", "email", "cart_reminder")]
    assert rows[0]["key"] == "journey:abandoned_cart:1:cart_email"
    assert rows[0]["data"]["event"]["name"] == "Red shoes"
    env.advance(DAY - 1)
    assert len(env.outbox()) == 1
    env.advance(1)
    assert steps_sent(env) == [("cart_email", "email"), ("cart_sms", "sms")]
    [run] = env.runs()
    assert run["state"] == "completed"
    assert store.count_timers(env.conn) == 0


def test_an_order_within_the_hour_sends_nothing(env: Journeys) -> None:
    cart(env)
    env.person("bo")
    env.track("bo", "Product Added", cart_id="c1")
    env.advance(30 * 60)
    env.track("bo", "Order Completed", order_id="o1", total=50)
    env.advance(2 * DAY)
    assert env.outbox() == []
    [run] = env.runs()
    assert run["state"] == "converted"
    [conv] = store.conversions(env.conn, "abandoned_cart")
    assert conv["run_id"] == run["id"] and conv["revenue"] == 50


def test_the_goal_ends_the_run_and_stops_later_messages(env: Journeys) -> None:
    cart(env)
    env.person("cy", phone="+46701234567")
    env.track("cy", "Product Added", cart_id="c1")
    env.advance(HOUR + 1)
    assert len(env.outbox()) == 1
    env.advance(HOUR)
    env.track("cy", "Order Completed", order_id="o9", revenue=120)
    env.advance(3 * DAY)
    assert steps_sent(env) == [("cart_email", "email")]  # no SMS
    [run] = env.runs()
    assert (run["state"], run["end_reason"]) == ("converted", "goal Order Completed")
    assert store.conversions(env.conn)[0]["revenue"] == 120
    assert store.count_timers(env.conn) == 0


def test_a_late_processor_cannot_let_an_order_overtake_a_due_timer(env: Journeys) -> None:
    cart(env)
    env.person("dan")
    env.track("dan", "Product Added", cart_id="c1")
    env.clock.advance(2 * HOUR)
    # The order arrives two hours later, but the timer worker never ran in between.
    env.track("dan", "Order Completed", order_id="o1")
    # The timeout (due at 1 h) fired first: the email was queued, then the goal.
    assert steps_sent(env) == [("cart_email", "email")]
    assert env.runs()[0]["state"] == "converted"


def test_timers_wait_for_events_the_processor_has_not_applied(env: Journeys) -> None:
    cart(env)
    env.person("eve")
    env.track("eve", "Product Added", cart_id="c1")
    env.clock.advance(59 * 60)
    env.log.add("track", event="Order Completed", user_id="eve", trusted=True,
                ts=env.now_ms(), received=env.now_ms(), properties={"order_id": "o"})
    env.clock.advance(10 * 60)
    assert env.timers.run_once() == 0  # the order (received at 59 min) comes first
    env.log.process()
    assert env.outbox() == []
    assert env.runs()[0]["state"] == "converted"


@pytest.mark.parametrize(("entry", "expected"), [
    ("{rule: once}", 1),
    ("{rule: every_time}", 3),
    ("{rule: once_per, period: 2d}", 2),
])
def test_entry_rules(env: Journeys, entry: str, expected: int) -> None:
    env.write("hello", f"""\
        trigger: {{event: Clicked}}
        entry: {entry}
        steps:
          - send: hello
            channel: email
        """)
    env.sync()
    env.person("fay")
    for _ in range(3):
        env.track("fay", "Clicked")
        env.advance(DAY + 1)
    assert len(env.outbox()) == expected
    assert len(env.runs()) == expected


def test_with_a_dedupe_key_runs_are_per_key_value(env: Journeys) -> None:
    cart(env)
    env.person("gus", phone="+46701234567")
    env.track("gus", "Product Added", cart_id="c1")
    env.track("gus", "Product Added", cart_id="c2")  # a second cart: a run of its own
    env.track("gus", "Product Added", cart_id="c1")  # the same cart: no second run
    assert [(r["dedupe"], r["state"]) for r in env.runs()] == [
        ("c1", "active"), ("c2", "active")]
    env.advance(HOUR + 1)
    # Both carts are reminded of, each once.
    assert sorted(r["key"] for r in env.outbox()) == [
        "journey:abandoned_cart:1:cart_email", "journey:abandoned_cart:2:cart_email"]
    env.advance(2 * DAY)
    env.track("gus", "Product Added", cart_id="c1")  # c1 had its run, ever
    env.track("gus", "Product Added")                # no cart_id: no dedupe key
    assert len(env.runs()) == 2
    env.track("gus", "Product Added", cart_id="c3")
    assert [r["dedupe"] for r in env.runs()] == ["c1", "c2", "c3"]


def test_without_a_dedupe_key_one_run_at_a_time(env: Journeys) -> None:
    env.write("browse", """\
        trigger: {event: Product Viewed}
        entry: {rule: every_time}
        steps: [{wait: 1h}, {send: thanks, channel: email}]
        """)
    env.sync()
    env.person("gil")
    env.track("gil", "Product Viewed", product_id="p1")
    env.track("gil", "Product Viewed", product_id="p2")  # a run is active
    assert len(env.runs()) == 1
    env.advance(HOUR + 1)
    env.track("gil", "Product Viewed", product_id="p3")  # the run has ended
    assert len(env.runs()) == 2


def test_trigger_property_filters(env: Journeys) -> None:
    env.write("big", """\
        trigger: {event: Order Completed, where: {total: {gte: 100}, currency: eur}}
        entry: {rule: every_time}
        steps: [{send: thanks, channel: email}]
        """)
    env.sync()
    env.person("hal")
    env.track("hal", "Order Completed", total=50, currency="EUR")
    env.track("hal", "Order Completed", total=150, currency="SEK")
    env.track("hal", "Order Completed", total=150, currency="EUR")
    assert len(env.runs()) == 1


def test_bot_events_and_kanal_events_never_trigger_unless_named(env: Journeys) -> None:
    env.write("clicked", """\
        trigger: {event: Email Link Clicked}
        entry: {rule: every_time}
        steps: [{send: thanks, channel: email}]
        """)
    env.write("any_delivery", """\
        trigger: {event: Product Viewed}
        steps: [{send: thanks, channel: email}]
        """)
    env.sync()
    env.person("ida")
    for bot in (True, False):
        env.log.add("track", event="Email Link Clicked", user_id="ida", origin="email",
                    properties={"bot": bot}, ts=env.now_ms(), received=env.now_ms())
        env.log.process()
        env.advance(1)
    runs = env.runs()
    assert [r["journey"] for r in runs] == ["clicked"]  # only the human click


def test_version_pinning(env: Journeys) -> None:
    env.write("pin", """\
        trigger: {event: Go}
        entry: {rule: every_time}
        steps:
          - wait: 1h
          - send: old
            channel: email
        """)
    env.sync()
    env.person("jo")
    env.person("kim")
    env.track("jo", "Go")
    env.write("pin", """\
        trigger: {event: Go}
        entry: {rule: every_time}
        steps:
          - wait: 1h
          - send: new
            channel: email
        """)
    env.sync()
    env.track("kim", "Go")
    env.advance(HOUR + 1)
    sent = {r["profile_id"]: r["message"] for r in env.outbox()}
    assert sent == {env.log.pid("jo"): "old", env.log.pid("kim"): "new"}
    assert [r["version"] for r in env.runs()] == [1, 2]


def test_restart_processes_overdue_timers(env: Journeys, tmp_path: Path) -> None:
    cart(env)
    env.person("lea", phone="+46700000001")
    env.track("lea", "Product Added", cart_id="c1")
    env.timers.close()
    env.clock.advance(3 * HOUR)  # down for three hours (ttl of the wait is 6 h)
    fresh = TimerWorker(env.log.db, env.clock, journeys_dir=env.dir,
                        evaluator=Evaluator(clock=env.clock))
    env.timers = fresh
    assert fresh.run_once() == 1
    assert steps_sent(env) == [("cart_email", "email")]
    env.clock.advance(2 * DAY)  # down past the next wait's ttl (12 h)
    fresh.run_once()
    assert steps_sent(env) == [("cart_email", "email")]
    [run] = env.runs()
    assert run["state"] == "expired" and "ttl" in run["end_reason"]


def test_condition_split_and_holdout_are_recorded(env: Journeys) -> None:
    env.write("ab", """\
        trigger: {event: Signed Up}
        steps:
          - if: {trait: country, eq: SE}
            then:
              - split:
                  holdout: 20
                  arms:
                    - {name: a, steps: [{send: a, channel: email}]}
                    - {name: b, weight: 3, steps: [{send: b, channel: email}]}
            else:
              - send: other
                channel: email
        """)
    env.sync()
    for i in range(60):
        env.person(f"p{i}", country="SE" if i < 50 else "NO")
        env.track(f"p{i}", "Signed Up")
    counts = store.assignments(env.conn, "ab")
    assert sum(counts.values()) == 50
    assert set(counts) <= {("1.then.1", "a"), ("1.then.1", "b"), ("1.then.1", "holdout")}
    assert counts[("1.then.1", "b")] > counts[("1.then.1", "a")]
    messages = [r["message"] for r in env.outbox()]
    assert messages.count("other") == 10
    assert len(messages) == 60 - counts.get(("1.then.1", "holdout"), 0)
    holdouts = [r for r in env.runs() if r["end_reason"] == "holdout"]
    assert len(holdouts) == counts.get(("1.then.1", "holdout"), 0)


def test_wait_for_an_event_matching_the_trigger(env: Journeys) -> None:
    env.write("same", """\
        trigger: {event: Checkout Started}
        entry: {rule: every_time}
        steps:
          - wait_for: {event: Order Completed, same: [checkout_id], timeout: 1h}
            on_event: [{send: thanks, channel: email}]
            on_timeout: [{send: nudge, channel: email}]
        """)
    env.sync()
    env.person("max")
    env.track("max", "Checkout Started", checkout_id="k1")
    env.track("max", "Order Completed", checkout_id="other")
    env.advance(10)
    env.track("max", "Order Completed", checkout_id="k1")
    env.advance(2 * HOUR)
    assert [r["message"] for r in env.outbox()] == ["thanks"]


def test_wait_until_a_date_trait(env: Journeys) -> None:
    env.write("renewal", """\
        trigger: {event: Subscribed Plan}
        steps:
          - wait_until: {trait: renews_at, offset: -1d}
          - send: renewal
            channel: email
        """)
    env.sync()
    start = env.now_ms()
    env.person("ned", renews_at=start + 5 * DAY * 1000)
    env.track("ned", "Subscribed Plan")
    env.advance(4 * DAY - 10)
    assert env.outbox() == []
    env.advance(20)
    assert [r["message"] for r in env.outbox()] == ["renewal"]


def test_set_trait_updates_the_profile(env: Journeys) -> None:
    env.write("tag", """\
        trigger: {event: Go}
        steps: [{set_trait: {vip: true}}]
        """)
    env.sync()
    env.person("ola")
    env.track("ola", "Go")
    profile = env.log.profile("ola")
    assert profile is not None and profile["traits"]["vip"] is True


def test_set_trait_is_an_event_and_survives_a_rebuild(env: Journeys) -> None:
    from kanal_collector.profiles.rebuild import rebuild
    from kanal_collector.profiles.views import snapshot

    env.write("tag", """\
        trigger: {event: Go}
        steps:
          - set_trait: {tier: silver}
          - wait: 1h
          - set_trait: {tier: gold, email: new@example.com}
          - if: {trait: tier, eq: gold}   # the run reads its own trait at once
            then: [{set_trait: {seen_gold: true}}]
        """)
    env.sync()
    env.person("pia")
    env.track("pia", "Go")
    seen = env.log.profile("pia")
    assert seen is not None and seen["traits"]["tier"] == "silver"
    env.advance(3600)
    profile = env.log.profile("pia")
    assert profile is not None
    assert profile["traits"]["tier"] == "gold"
    assert profile["traits"]["seen_gold"] is True
    assert profile["traits"]["email"] == "new@example.com"  # Kanal is trusted
    # Kanal setting a trait is not the person being seen
    assert profile["computed"] == seen["computed"]
    rows = env.conn.execute(
        f"SELECT type, key_kind, origin, message_id, {BODY_COLUMNS} FROM events "
        "WHERE key_kind = 'kanal' ORDER BY id").fetchall()
    assert [r[:3] for r in rows] == [("identify", "kanal", "server")] * 3
    assert len({r[3] for r in rows}) == 3
    assert all(read_body(r[4:])["userId"] == "pia" for r in rows)
    env.log.process()  # the timer worker's events reach the profiles step: no change
    assert env.log.profile("pia") == profile
    live = snapshot(env.conn)
    assert rebuild(env.conn, env.clock, batch_size=2) > 0
    assert snapshot(env.conn) == live


class _Session:
    def __init__(self, fail: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self) -> _Session:
        return self

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def post(self, url: str, **kwargs: Any) -> Any:
        import requests

        self.calls.append({"url": url, **kwargs})
        if self.fail:
            self.fail -= 1
            raise requests.ConnectionError("refused")
        return type("R", (), {"status_code": 204})()


def test_webhook_step_calls_once_with_an_idempotency_key(tmp_path: Path) -> None:
    session = _Session(fail=1)
    env = Journeys(tmp_path, webhook_session=session)
    try:
        env.write("hook", """\
            trigger: {event: Go}
            steps:
              - webhook: {url: "https://crm.example.com/h", payload: {a: 1}}
              - send: after
                channel: email
            """)
        env.sync()
        env.person("pia")
        env.track("pia", "Go")
        env.advance(1)
        assert len(session.calls) == 1 and env.outbox() == []  # failed: retry later
        env.advance(31)
        assert len(session.calls) == 2
        call = session.calls[-1]
        installation = meta.get(env.conn, meta.INSTALLATION_KEY)
        assert call["headers"]["Idempotency-Key"] == f"kanal-{installation}-journey:hook:1:1"
        assert call["json"]["data"] == {"a": 1}
        assert [r["message"] for r in env.outbox()] == ["after"]
        env.advance(DAY)
        assert len(session.calls) == 2
    finally:
        env.close()


def test_scheduled_win_back(env: Journeys) -> None:
    env.write("win_back", (EXAMPLES / "win_back.yaml").read_text())
    env.sync()
    env.person("quin")
    env.track("quin", "Order Completed", order_id="o1", total=30)
    env.person("rut")  # never ordered
    env.advance(DAY)
    assert env.outbox() == []
    env.clock.advance(91 * DAY)
    env.advance(DAY)
    assert [(r["message"], r["profile_id"]) for r in env.outbox()] == [
        ("win_back", env.log.pid("quin"))]
    env.advance(10 * DAY)  # no open in 7 days: the SMS step (no phone: skipped row)
    assert [r["message"] for r in env.outbox()] == ["win_back", "win_back"]
    env.advance(30 * DAY)
    assert len(env.runs()) == 1  # at most once per 180 days


def test_segment_trigger(env: Journeys) -> None:
    from kanal_collector.store import segments as segment_store
    from kanal_collector.store.db import transaction

    with transaction(env.conn) as conn:
        segment_store.put_segment_definitions(
            conn, {"vip": {"all": [{"trait": "vip", "eq": True}]}}, env.now_ms())
    env.write("vip", """\
        trigger: {segment: vip}
        steps: [{send: welcome_vip, channel: email}]
        """)
    env.sync()
    env.person("sam", vip=True)
    env.log.process()
    assert [r["message"] for r in env.outbox()] == ["welcome_vip"]


def test_examples_run_welcome_and_post_purchase(env: Journeys) -> None:
    # and the journeys post_purchase's exclusions name (price_drop, and its groups'
    # abandoned_cart), which these events don't start
    for name in ("welcome", "post_purchase", "price_drop", "abandoned_cart"):
        env.write(name, (EXAMPLES / f"{name}.yaml").read_text())
    env.timers.session = _Session()
    env.sync()
    env.person("tor")
    env.track("tor", "Signed Up")
    env.track("tor", "Order Completed", order_id="o1", total=80)
    env.advance(3 * DAY + 1)
    messages = [r["message"] for r in env.outbox()]
    assert messages == ["welcome", "cross_sell"]  # ordered: no second welcome
    states = {r["journey"]: r["state"] for r in env.runs()}
    assert states == {"welcome": "converted", "post_purchase": "completed"}
    assert store.conversions(env.conn, "welcome")[0]["revenue"] == 80


def test_conversions_after_the_last_step_count_only_within_the_window(env: Journeys) -> None:
    env.write("windowed", """\
        trigger: {event: Go}
        goal: {event: Order Completed, within: 2d}
        steps: [{send: hi, channel: email}]
        """)
    env.write("unwindowed", """\
        trigger: {event: Go}
        goal: {event: Order Completed}
        steps: [{send: hi, channel: email}]
        """)
    env.sync()
    env.person("uma")
    env.track("uma", "Go")
    env.advance(DAY)
    env.track("uma", "Order Completed", order_id="o1", total=10)
    env.track("uma", "Order Completed", order_id="o2", total=20)
    assert [(c["journey"], c["revenue"]) for c in store.conversions(env.conn)] == [
        ("windowed", 10)]
    assert {r["journey"]: r["state"] for r in env.runs()} == {
        "windowed": "completed", "unwindowed": "completed"}
