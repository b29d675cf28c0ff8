"""Journey controls: wait_window steps, quiet hours, frequency caps and the daily budget."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from journeys_util import Journeys
from kanal_testing import db_at
from messages_util import World, catalog, channel

from kanal_collector.config import Config
from kanal_collector.journeys import Evaluator, JourneyFileError, parse_journey
from kanal_collector.messages import Dispatcher, build_dispatcher
from kanal_collector.messages.controls import Controls, decide
from kanal_collector.messages.eligibility import load_person
from kanal_collector.store import journeys as journey_store
from kanal_collector.store import outbox
from kanal_collector.store.db import transaction

BERLIN = "Europe/Berlin"


def local(tz: str, text: str) -> float:
    """Epoch seconds of a local wall time ("2026-03-25 10:00") in a zone."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def ms(tz: str, text: str) -> int:
    return int(local(tz, text) * 1000)


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# -- wait_window in journeys ----------------------------------------------------------------

WINDOW = """\
    name: win
    trigger: {event: Go}
    steps:
      - wait_window: %s
      - send: cart
        channel: email
    """


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Journeys]:
    e = Journeys(tmp_path)
    try:
        yield e
    finally:
        e.close()


def start(env: Journeys, window: str, when: float) -> None:
    env.clock.set(when)
    env.write("win", WINDOW % window)
    env.sync()


def window_log(env: Journeys) -> list[dict[str, Any]]:
    (run,) = env.runs("win")
    return [e["detail"] for e in journey_store.run_log(env.conn, run["id"])
            if e["what"] == "window"]


WEEKDAYS = '{from: "09:00", to: "18:00", days: [mon, tue, wed, thu, fri]}'


def test_inside_the_window_the_run_goes_on_at_once(env: Journeys) -> None:
    start(env, WEEKDAYS, local(BERLIN, "2026-03-25 10:00"))  # a Wednesday
    env.person("u1", timezone=BERLIN)
    env.track("u1", "Go")
    assert [r["state"] for r in env.outbox()] == ["queued"]
    assert window_log(env) == [{"timezone": BERLIN, "inside": True}]


def test_outside_the_window_a_timer_waits_for_the_next_start(env: Journeys) -> None:
    start(env, WEEKDAYS, local(BERLIN, "2026-03-25 19:30"))
    env.person("u1", timezone=BERLIN)
    env.track("u1", "Go")
    thursday_nine = ms(BERLIN, "2026-03-26 09:00")
    assert env.outbox() == []
    assert window_log(env) == [{"timezone": BERLIN, "until": thursday_nine}]
    env.advance(thursday_nine / 1000 - env.clock.now() - 1)
    assert env.outbox() == []
    env.advance(1)
    assert [r["state"] for r in env.outbox()] == ["queued"]


def test_weekends_are_skipped_across_the_spring_change(env: Journeys) -> None:
    start(env, WEEKDAYS, local(BERLIN, "2026-03-27 18:00"))  # Friday, the window closes
    env.person("u1", timezone=BERLIN)
    env.track("u1", "Go")
    monday = window_log(env)[0]["until"]
    assert monday == ms(BERLIN, "2026-03-30 09:00") == utc_ms("2026-03-30T07:00")
    env.advance(2 * 86_400)  # Sunday: still waiting
    assert env.outbox() == []
    env.advance(monday / 1000 - env.clock.now())
    assert len(env.outbox()) == 1


def test_a_window_over_midnight(env: Journeys) -> None:
    nights = '{from: "22:00", to: "02:00", days: [mon]}'
    start(env, nights, local(BERLIN, "2026-03-24 01:00"))  # Tuesday 01:00: Monday's window
    env.person("u1", timezone=BERLIN)
    env.track("u1", "Go")
    assert window_log(env) == [{"timezone": BERLIN, "inside": True}]
    env.person("u2", timezone=BERLIN)
    env.advance(local(BERLIN, "2026-03-24 23:00") - env.clock.now())
    env.track("u2", "Go")
    (_, waiting) = env.runs("win")
    (entry,) = [e["detail"] for e in journey_store.run_log(env.conn, waiting["id"])
                if e["what"] == "window"]
    assert entry["until"] == ms(BERLIN, "2026-03-30 22:00")


@pytest.mark.parametrize(("person_zone", "step_zone", "expected_zone"), [
    (None, "America/New_York", "America/New_York"),    # no zone: the step's
    ("Mars/Olympus", "America/New_York", "America/New_York"),  # invalid: the step's
    ("Asia/Tokyo", "America/New_York", "Asia/Tokyo"),  # the person's wins
    (None, None, "Australia/Sydney"),                  # the evaluator's default
])
def test_the_window_follows_the_person_or_the_fallbacks(
        env: Journeys, person_zone: str | None, step_zone: str | None,
        expected_zone: str) -> None:
    env.evaluator.default_timezone = "Australia/Sydney"
    spec = '{from: "09:00", to: "10:00"' + (f", timezone: {step_zone}}}" if step_zone
                                              else "}")
    start(env, spec, utc_ms("2026-06-10T12:00") / 1000)
    traits = {"timezone": person_zone} if person_zone else {}
    env.person("u1", **traits)
    env.track("u1", "Go")
    (entry,) = window_log(env)
    assert entry["timezone"] == expected_zone
    after = datetime.fromtimestamp(entry["until"] / 1000, ZoneInfo(expected_zone))
    assert (after.hour, after.minute) == (9, 0)
    assert entry["until"] > utc_ms("2026-06-10T12:00")
    assert entry["until"] - utc_ms("2026-06-10T12:00") <= 86_400_000


def test_dst_edges_in_new_york(env: Journeys) -> None:
    start(env, '{from: "02:15", to: "04:00"}', local("America/New_York", "2026-03-07 12:00"))
    env.person("u1", timezone="America/New_York")
    env.track("u1", "Go")
    # 02:15 does not exist on 8 March 2026: the window opens at 03:00 EDT.
    assert window_log(env)[0]["until"] == utc_ms("2026-03-08T07:00")


def test_the_evaluator_default_timezone_is_checked() -> None:
    assert Evaluator(default_timezone="Europe/Berlin").default_timezone == BERLIN
    with pytest.raises(ValueError, match="unknown time zone"):
        Evaluator(default_timezone="Berlin")


# -- journey file keys ------------------------------------------------------------------------

def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(JourneyFileError) as info:
        parse_journey(textwrap.dedent(text), source="j.yaml", name="j")
    return [(p.line, p.where, p.message) for p in info.value.problems]


def test_journey_keys_compile() -> None:
    journey = parse_journey(textwrap.dedent("""\
        priority: 7
        quiet_hours: drop
        over_limit: skip
        trigger: {event: A}
        steps:
          - wait_window: {from: "22:00", to: "06:00", days: [sat, sun], timezone: Asia/Tokyo}
          - send: m
            priority: 9
            over_limit: wait
        """), name="j")
    assert (journey.priority, journey.quiet_hours, journey.over_limit) == (7, "drop", "skip")
    window = journey.steps["1"]
    assert window.kind == "wait_window"
    assert window.spec == {"from": "22:00", "to": "06:00", "start": 22 * 60, "end": 6 * 60,
                           "days": [5, 6], "timezone": "Asia/Tokyo"}
    assert journey.steps["2"].spec["priority"] == 9
    assert journey.steps["2"].spec["over_limit"] == "wait"
    plain = parse_journey("trigger: {event: A}\nsteps:\n  - send: m\n", name="p")
    assert (plain.priority, plain.quiet_hours, plain.over_limit) == (0, "defer", "wait")


@pytest.mark.parametrize(("step", "where", "words"), [
    ('wait_window: {from: "09:00"}', "steps[0].wait_window", "to is required"),
    ('wait_window: {from: "9am", to: "18:00"}', "steps[0].wait_window.from", "time of day"),
    ('wait_window: {from: "09:00", to: 18:00}', "steps[0].wait_window.to", "quote it"),
    ('wait_window: {from: "09:00", to: "09:00"}', "steps[0].wait_window", "must differ"),
    ('wait_window: {from: "09:00", to: "18:00", days: [funday]}',
     "steps[0].wait_window.days", "mon, tue"),
    ('wait_window: {from: "09:00", to: "18:00", timezone: Mars/Olympus}',
     "steps[0].wait_window.timezone", "unknown time zone 'Mars/Olympus'"),
    ('wait_window: {from: "09:00", to: "18:00", at: x}', "steps[0].wait_window.at",
     "unknown field"),
    ("wait_window: 09:00-18:00", "steps[0].wait_window", "a mapping"),
    ("send: m\n    priority: high", "steps[0].priority", "whole number"),
    ("send: m\n    quiet_hours: later", "steps[0].quiet_hours", "defer or drop"),
    ("send: m\n    over_limit: never", "steps[0].over_limit", "wait or skip"),
])
def test_bad_steps_are_reported_with_their_line(step: str, where: str, words: str) -> None:
    found = problems(f"trigger: {{event: A}}\nsteps:\n  - {step}\n")
    assert len(found) == 1, found
    line, at, message = found[0]
    assert (at, line) == (where, 3 if "\n" not in step else 4)
    assert words in message


@pytest.mark.parametrize(("top", "where", "words"), [
    ("priority: true", "priority", "whole number"),
    ("quiet_hours: maybe", "quiet_hours", "defer or drop"),
    ("over_limit: 3", "over_limit", "wait or skip"),
])
def test_bad_top_level_controls(top: str, where: str, words: str) -> None:
    (problem,) = problems(f"{top}\ntrigger: {{event: A}}\nsteps:\n  - send: m\n")
    assert problem[:2] == (1, where) and words in problem[2]


def test_a_journey_passes_its_priority_and_controls_to_the_outbox(env: Journeys) -> None:
    env.write("a", """\
        priority: 4
        quiet_hours: drop
        trigger: {event: Go}
        steps:
          - send: cart
          - send: cart
            priority: 9
            over_limit: skip
        """)
    env.sync()
    env.person("u1")
    env.track("u1", "Go")
    first, second = outbox.listing(env.conn)[::-1]
    assert (first.priority, first.controls) == (4, {"quiet_hours": "drop",
                                                    "over_limit": "wait"})
    assert (second.priority, second.controls) == (9, {"quiet_hours": "drop",
                                                      "over_limit": "skip"})
    assert first.as_json()["priority"] == 4
    assert second.as_json()["controls"] == {"quiet_hours": "drop", "over_limit": "skip"}


# -- the dispatcher's controls ----------------------------------------------------------------

QUIET = {"quiet_hours": {"from": "21:00", "to": "08:00", "timezone": BERLIN}}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "kanal.db")
    w.clock.set(local(BERLIN, "2026-03-25 12:00"))  # a Wednesday
    try:
        yield w
    finally:
        w.close()


def controlled(world: World, sections: dict[str, Any]) -> Dispatcher:
    """Give the world a dispatcher with these kanal.toml sections."""
    world.dispatcher.close()
    world.dispatcher = world.make_dispatcher(
        controls=Controls.from_config(Config(sections=sections)))
    return world.dispatcher


def at(world: World, tz: str, text: str) -> None:
    world.clock.set(local(tz, text))


def sent(world: World, name: str = "email") -> list[int]:
    """Outbox ids the channel has sent, in order."""
    (ch,) = [c for c in world.channels if c.name == name]
    return [m.outbox_id for m in ch.sent]


def log_of(world: World, oid: int) -> list[tuple[str, dict[str, Any]]]:
    return [(e["what"], e["detail"]) for e in outbox.outbox_log(world.conn, oid)]


def test_quiet_hours_defer_to_their_end_and_send_once(world: World) -> None:
    controlled(world, QUIET)
    pid = world.person("u1", email="a@example.com", timezone=BERLIN)
    at(world, BERLIN, "2026-03-25 22:30")
    oid = world.enqueue(pid, "k1")
    assert world.dispatcher.drain() == 1
    row = world.row(oid)
    morning = ms(BERLIN, "2026-03-26 08:00")
    assert (row.state, row.reason, row.next_attempt_at, row.attempts, row.claim_token) == (
        "queued", "deferred: quiet hours", morning, 0, None)
    assert log_of(world, oid) == [("deferred", {"reason": "quiet hours", "until": morning,
                                                "timezone": BERLIN})]
    at(world, BERLIN, "2026-03-26 07:59")
    assert world.dispatcher.drain() == 0
    at(world, BERLIN, "2026-03-26 08:00")
    world.dispatcher.drain()
    at(world, BERLIN, "2026-03-27 08:00")
    world.dispatcher.drain()
    assert sent(world) == [oid]
    row = world.row(oid)
    assert (row.state, row.reason, row.attempts) == ("sent", None, 1)


def test_quiet_hours_drop_skips_the_message(world: World) -> None:
    controlled(world, QUIET)
    pid = world.person("u1", email="a@example.com")
    at(world, BERLIN, "2026-03-26 06:00")
    oid = world.enqueue(pid, "k1", controls={"quiet_hours": "drop"})
    world.dispatcher.drain()
    row = world.row(oid)
    assert (row.state, row.reason) == ("skipped", "quiet hours")
    assert log_of(world, oid) == [("skipped", {"reason": "quiet hours", "until": None,
                                               "timezone": BERLIN})]
    assert sent(world) == []


def test_quiet_hours_are_in_the_person_s_zone(world: World) -> None:
    controlled(world, QUIET)
    ny = world.person("ny", email="ny@example.com", timezone="America/New_York")
    mars = world.person("mars", email="m@example.com", timezone="Mars/Olympus")
    at(world, BERLIN, "2026-03-25 22:30")  # 17:30 in New York
    in_ny = world.enqueue(ny, "k1")
    on_mars = world.enqueue(mars, "k2")  # an invalid zone: Berlin, the fallback
    world.dispatcher.drain()
    assert sent(world) == [in_ny]
    assert world.row(on_mars).reason == "deferred: quiet hours"


def test_quiet_hours_per_channel_replace_the_global_window(world: World) -> None:
    controlled(world, {"quiet_hours": {"from": "22:00", "to": "07:00", "timezone": BERLIN,
                                       "sms": {"from": "20:00", "to": "09:00"}}})
    pid = world.person("u1", email="a@example.com", phone="+4915112345678",
                       subscriptions={"sms": True})
    at(world, BERLIN, "2026-03-25 20:30")
    mail = world.enqueue(pid, "k1", channel="email")
    text = world.enqueue(pid, "k2", channel="sms")
    world.dispatcher.drain()
    assert sent(world, "email") == [mail]
    assert world.row(text).next_attempt_at == ms(BERLIN, "2026-03-26 09:00")
    at(world, BERLIN, "2026-03-26 07:30")  # email could go; sms is still quiet
    world.dispatcher.drain()
    assert sent(world, "sms") == []
    at(world, BERLIN, "2026-03-26 09:00")
    world.dispatcher.drain()
    assert sent(world, "sms") == [text]


def test_transactional_messages_are_exempt(world: World) -> None:
    controlled(world, {**QUIET, "frequency": {"per_day": 1, "daily_budget": 1}})
    pid = world.person("u1", email="a@example.com")
    at(world, BERLIN, "2026-03-25 23:00")
    receipts = [world.enqueue(pid, f"r{i}", message="receipt", kind="transactional",
                              data={"order": i}) for i in range(3)]
    world.dispatcher.drain()
    assert sent(world) == receipts
    # …and they don't count against the marketing caps.
    at(world, BERLIN, "2026-03-26 09:00")
    promo = world.enqueue(pid, "p1")
    world.dispatcher.drain()
    assert sent(world)[-1] == promo


def test_unsubscribed_still_blocks_a_deferred_row(world: World) -> None:
    controlled(world, QUIET)
    pid = world.person("u1", email="a@example.com")
    at(world, BERLIN, "2026-03-25 22:00")
    oid = world.enqueue(pid, "k1")
    world.dispatcher.drain()
    assert world.row(oid).state == "queued"
    world.track("u1", "Unsubscribed", channel="email")
    at(world, BERLIN, "2026-03-26 08:00")
    world.dispatcher.drain()
    assert (world.row(oid).state, world.row(oid).reason) == ("skipped", "unsubscribed")
    assert sent(world) == []


def test_a_cap_per_day_waits_for_the_next_local_day(world: World) -> None:
    controlled(world, {"frequency": {"per_day": 2}, "quiet_hours": {"timezone": BERLIN}})
    pid = world.person("u1", email="a@example.com")
    ids = [world.enqueue(pid, f"k{i}") for i in range(3)]
    world.dispatcher.drain()
    assert sent(world) == ids[:2]
    row = world.row(ids[2])
    midnight = ms(BERLIN, "2026-03-26 00:00")
    assert (row.reason, row.next_attempt_at) == ("deferred: frequency cap: 2 per day",
                                                 midnight)
    at(world, BERLIN, "2026-03-26 00:00")
    world.dispatcher.drain()
    assert sent(world) == ids


def test_a_cap_wait_lands_after_quiet_hours_not_in_them(world: World) -> None:
    controlled(world, {**QUIET, "frequency": {"per_day": 1}})
    pid = world.person("u1", email="a@example.com")
    first = world.enqueue(pid, "k1")
    second = world.enqueue(pid, "k2", controls={"quiet_hours": "drop"})
    world.dispatcher.drain()
    assert sent(world) == [first]
    # Not woken at midnight (inside quiet hours, where `drop` would lose it): at 08:00.
    assert world.row(second).next_attempt_at == ms(BERLIN, "2026-03-26 08:00")
    at(world, BERLIN, "2026-03-26 08:00")
    world.dispatcher.drain()
    assert sent(world) == [first, second]


def test_over_limit_skip(world: World) -> None:
    controlled(world, {"frequency": {"per_day": 1}})
    pid = world.person("u1", email="a@example.com")
    first = world.enqueue(pid, "k1")
    second = world.enqueue(pid, "k2", controls={"over_limit": "skip"})
    world.dispatcher.drain()
    assert sent(world) == [first]
    assert (world.row(second).state, world.row(second).reason) == (
        "skipped", "frequency cap: 1 per day")


def test_a_weekly_cap_counts_the_seven_local_days_ending_today(world: World) -> None:
    controlled(world, {"frequency": {"per_week": 2}, "quiet_hours": {"timezone": BERLIN}})
    pid = world.person("u1", email="a@example.com")
    monday = world.enqueue(pid, "k1")
    world.dispatcher.drain()  # Wednesday 25 March
    at(world, BERLIN, "2026-03-26 12:00")
    world.enqueue(pid, "k2")
    world.dispatcher.drain()
    third = world.enqueue(pid, "k3")
    world.dispatcher.drain()
    assert world.row(third).reason == "deferred: frequency cap: 2 per week"
    # Day after day it waits, until the first send leaves the 7 days (1 April).
    for day in ("2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"):
        at(world, BERLIN, f"{day} 00:00")
        world.dispatcher.drain()
        assert world.row(third).state == "queued", day
    at(world, BERLIN, "2026-04-01 00:00")
    world.dispatcher.drain()
    assert world.row(third).state == "sent"
    assert len(sent(world)) == 3 and sent(world)[0] == monday
    assert [w for w, _ in log_of(world, third)] == ["deferred"] * 6


def test_caps_per_channel(world: World) -> None:
    controlled(world, {"frequency": {"per_day": 5, "sms": {"per_day": 1, "per_week": 3}}})
    pid = world.person("u1", email="a@example.com", phone="+4915112345678",
                       subscriptions={"sms": True})
    texts = [world.enqueue(pid, f"s{i}", channel="sms") for i in range(2)]
    mails = [world.enqueue(pid, f"e{i}", channel="email") for i in range(2)]
    world.dispatcher.drain()
    assert sent(world, "sms") == texts[:1]
    assert sent(world, "email") == mails
    assert world.row(texts[1]).reason == "deferred: frequency cap: 1 per day on sms"


def test_a_day_is_the_person_s_local_day_even_over_dst(world: World) -> None:
    controlled(world, {"frequency": {"per_day": 1}})
    pid = world.person("u1", email="a@example.com", timezone=BERLIN)
    at(world, BERLIN, "2026-03-29 00:30")
    first = world.enqueue(pid, "k1")
    world.dispatcher.drain()
    at(world, BERLIN, "2026-03-29 23:30")  # the same (23-hour) local day
    second = world.enqueue(pid, "k2")
    world.dispatcher.drain()
    assert sent(world) == [first]
    assert world.row(second).next_attempt_at == utc_ms("2026-03-29T22:00")


def test_the_budget_goes_to_the_highest_priority(world: World) -> None:
    controlled(world, {"frequency": {"daily_budget": 1}, "quiet_hours": {"timezone": BERLIN}})
    pid = world.person("u1", email="a@example.com")
    low = world.enqueue(pid, "a", journey="newsletter", priority=0)
    mid = world.enqueue(pid, "b", journey="browse", priority=5,
                        controls={"over_limit": "skip"})
    high = world.enqueue(pid, "c", journey="cart", priority=10)
    world.dispatcher.drain()
    assert sent(world) == [high]
    assert (world.row(mid).state, world.row(mid).reason) == (
        "skipped", "daily budget: 1 per day; outranked by journey cart")
    assert world.row(low).reason == ("deferred: daily budget: 1 per day; "
                                     "outranked by journey cart")
    assert world.row(low).next_attempt_at == ms(BERLIN, "2026-03-26 00:00")
    at(world, BERLIN, "2026-03-26 00:00")
    world.dispatcher.drain()
    assert sent(world) == [high, low]


def test_a_higher_priority_send_later_today_keeps_its_slot(world: World) -> None:
    controlled(world, {"frequency": {"daily_budget": 2}})  # no zone anywhere: UTC days
    pid = world.person("u1", email="a@example.com")
    later = local(BERLIN, "2026-03-25 15:00")
    cart = world.enqueue(pid, "c", journey="cart", priority=10, send_at=later)
    winback = world.enqueue(pid, "w", journey="winback", priority=10, send_at=later)
    news = world.enqueue(pid, "n", journey="newsletter", priority=1)
    world.dispatcher.drain()
    assert sent(world) == []
    assert world.row(news).reason == ("deferred: daily budget: 2 per day; "
                                      "outranked by journey cart")
    at(world, BERLIN, "2026-03-25 15:00")
    world.dispatcher.drain()
    assert sent(world) == [cart, winback]
    assert world.row(news).next_attempt_at == utc_ms("2026-03-26T00:00")
    world.clock.set(utc_ms("2026-03-26T00:00") / 1000)
    world.dispatcher.drain()
    assert sent(world) == [cart, winback, news]


def test_journeys_compete_for_the_budget_end_to_end(env: Journeys) -> None:
    env.clock.set(local(BERLIN, "2026-03-25 10:00"))
    for name, priority, over in (("cart", 10, "wait"), ("browse", 5, "skip"),
                                 ("news", 1, "wait")):
        env.write(name, f"""\
            priority: {priority}
            over_limit: {over}
            trigger: {{event: Go}}
            steps:
              - send: cart
                channel: email
            """)
    env.sync()
    env.person("u1", timezone=BERLIN)
    env.track("u1", "Go")
    email = channel("email")
    dispatcher = Dispatcher(env.log.db, env.clock, {"email": email}, catalog(),
                            before_send=[],
                            controls=Controls.from_config(Config(sections={
                                "frequency": {"daily_budget": 1}})))
    try:
        dispatcher.drain()
        states = {r["journey"]: r["state"] for r in env.outbox()}
        assert states == {"cart": "sent", "browse": "skipped", "news": "queued"}
        env.clock.set(local(BERLIN, "2026-03-26 00:00"))
        dispatcher.drain()
        dispatcher.drain()
        states = {r["journey"]: r["state"] for r in env.outbox()}
        assert states == {"cart": "sent", "browse": "skipped", "news": "sent"}
        assert len(email.sent) == 2
    finally:
        dispatcher.close()


def test_no_controls_send_everything(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    at(world, BERLIN, "2026-03-25 23:30")
    ids = [world.enqueue(pid, f"k{i}") for i in range(4)]
    world.dispatcher.drain()
    assert sent(world) == ids
    row = world.row(ids[0])
    person = load_person(world.conn, pid)
    assert person is not None
    assert decide(world.conn, row, person, "email", 0, Controls()).action == "send"


# -- store functions and validation -----------------------------------------------------------

def test_defer_is_guarded_by_the_claim_token(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1")
    conn = world.conn
    with transaction(conn):
        (row,) = outbox.claim(conn, "email", 10**13, 5, token="t1", owner="me")
        assert not outbox.defer(conn, oid, "other", until=5, reason="x", now=1)
        assert outbox.defer(conn, oid, "t1", until=5, reason="quiet hours", now=1)
        assert not outbox.defer(conn, oid, "t1", until=6, reason="again", now=1)
    row = world.row(oid)
    assert (row.state, row.next_attempt_at, row.reason) == ("queued", 5,
                                                           "deferred: quiet hours")


def test_the_claim_takes_the_highest_priority_first(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    ids = {p: world.enqueue(pid, f"k{p}", priority=p) for p in (0, 5, -3, 10)}
    later = world.enqueue(pid, "later", priority=99, send_at=world.clock.now() + 60)
    conn = world.conn
    with transaction(conn):
        first = outbox.claim(conn, "email", int(world.clock.now() * 1000),
                             2, token="t1", owner="me")
        rest = outbox.claim(conn, "email", int(world.clock.now() * 1000), 9, token="t2",
                            owner="me")
    assert [r.id for r in first] == [ids[10], ids[5]]
    assert [r.id for r in rest] == [ids[0], ids[-3]]
    assert world.row(later).state == "queued"


def test_forget_deletes_a_row_s_log(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    oid = world.enqueue(pid, "k1")
    with transaction(world.conn) as conn:
        outbox.log_decision(conn, oid, 1, "deferred", {"reason": "quiet hours", "until": 2})
    assert log_of(world, oid) == [("deferred", {"reason": "quiet hours", "until": 2})]
    with transaction(world.conn) as conn:
        outbox.delete_profile_rows(conn, pid)
    assert log_of(world, oid) == []


def test_enqueue_checks_priority_and_controls(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    with pytest.raises(TypeError, match="priority"):
        world.enqueue(pid, "k1", priority=True)
    with pytest.raises(ValueError, match="controls.quiet_hours must be defer or drop"):
        world.enqueue(pid, "k1", controls={"quiet_hours": "later"})
    with pytest.raises(ValueError, match="unknown key 'when'"):
        world.enqueue(pid, "k1", controls={"when": "now"})


def test_the_config_sections_parse() -> None:
    controls = Controls.from_config(Config(sections={
        "journeys": {"default_timezone": "Asia/Tokyo"},
        "quiet_hours": {"from": "21:00", "to": "08:00",
                        "sms": {"from": "20:00", "to": "09:00", "timezone": BERLIN}},
        "frequency": {"per_day": 3, "per_week": 10, "daily_budget": 2,
                      "sms": {"per_day": 1, "per_week": 3}},
    }))
    assert controls.timezone == "Asia/Tokyo"
    assert controls.quiet_hours is not None
    assert (controls.quiet_hours.window.start, controls.quiet_hours.window.end) == (1260, 480)
    sms = controls.quiet_for("sms")
    assert sms is not None and sms.timezone == BERLIN and sms.window.start == 1200
    assert controls.quiet_for("email") == controls.quiet_hours
    assert (controls.caps.per_day, controls.caps.per_week, controls.daily_budget) == (3, 10, 2)
    assert controls.channel_caps["sms"].per_week == 3
    assert controls.limited and not Controls().limited
    assert Controls.from_config(Config(sections={"quiet_hours": {"timezone": BERLIN}})) \
        .timezone == BERLIN


@pytest.mark.parametrize(("sections", "words"), [
    ({"quiet_hours": {"from": "21:00"}}, r"\[quiet_hours\] to: required"),
    ({"quiet_hours": {"from": "21", "to": "08:00"}}, r"\[quiet_hours\] from: "),
    ({"quiet_hours": {"from": "21:00", "to": "21:00"}}, "must differ"),
    ({"quiet_hours": {"from": "21:00", "to": "08:00", "timezone": "CET/Berlin"}},
     r"\[quiet_hours\] timezone: unknown time zone"),
    ({"quiet_hours": {"start": "21:00"}}, r"\[quiet_hours\] start: unknown key"),
    ({"quiet_hours": {"sms": {"from": "20:00", "to": "09:00", "days": ["mon"]}}},
     r"\[quiet_hours.sms\] days: unknown key"),
    ({"quiet_hours": {"sms": {"to": "09:00"}}}, r"\[quiet_hours.sms\] from: required"),
    ({"frequency": {"per_day": -1}}, r"\[frequency\] per_day: a whole number"),
    ({"frequency": {"per_week": "ten"}}, r"\[frequency\] per_week"),
    ({"frequency": {"daily_budget": True}}, r"\[frequency\] daily_budget"),
    ({"frequency": {"per_month": 3}}, r"\[frequency\] per_month: unknown key"),
    ({"frequency": {"sms": {"daily_budget": 1}}}, r"\[frequency.sms\] daily_budget"),
    ({"frequency": {"sms": {"per_day": 1.5}}}, r"\[frequency.sms\] per_day"),
    ({"journeys": {"default_timezone": "Nowhere"}}, r"\[journeys\] default_timezone"),
])
def test_config_errors_name_the_key(sections: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Controls.from_config(Config(sections=sections))


def test_build_dispatcher_reads_the_controls(tmp_path: Path, world: World) -> None:
    config = Config(db=db_at(tmp_path / "kanal.db"), sections={"frequency": {"daily_budget": 2}})
    dispatcher = build_dispatcher(config, world.log.db, world.clock)
    try:
        assert dispatcher.controls.daily_budget == 2
    finally:
        dispatcher.close()
    with pytest.raises(ValueError, match="per_day"):
        build_dispatcher(Config(sections={"frequency": {"per_day": "x"}}), world.log.db,
                         world.clock)
