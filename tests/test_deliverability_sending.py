"""Send-time deliverability rules: warm-up ramps, recipient-domain throttles, sunset."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from messages_util import World, channel

from kanal_collector.config import Config
from kanal_collector.journeys.explain import send_report
from kanal_collector.messages.controls import Controls
from kanal_collector.messages.sending import SendingRules
from kanal_collector.store import outbox
from kanal_collector.store.db import transaction

DAY = 86_400


def rules_config(**deliverability: Any) -> Config:
    return Config(sections={
        "channels": {"email": {"type": "email", "from": "Shop <news@shop.example>"}},
        "deliverability": deliverability})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "kanal.db", [channel("email"), channel("sms", identity="phone")])
    try:
        yield w
    finally:
        w.close()


def people(world: World, n: int, domain: str = "example.com", prefix: str = "p") -> list[int]:
    """n people with trusted email addresses, processed in one go."""
    for i in range(n):
        world.log.add("identify", user_id=f"{prefix}{i}", trusted=True,
                      traits={"email": f"{prefix}{i}@{domain}"})
    world.log.process()
    pids = [world.log.pid(f"{prefix}{i}") for i in range(n)]
    assert all(p is not None for p in pids)
    return [int(p) for p in pids if p is not None]


def use(world: World, config: Config) -> None:
    world.dispatcher.close()
    world.dispatcher = world.make_dispatcher(controls=Controls.from_config(config))


def states(world: World, ids: list[int]) -> Counter[str]:
    return Counter(world.row(i).state for i in ids)


def test_warm_up_defers_the_overflow_and_never_drops_it(world: World) -> None:
    use(world, rules_config(warmup={"shop.example": {"ramp": [50, 100]}}))
    pids = people(world, 120)
    world.clock.set(world.clock.now() - world.clock.now() % DAY + DAY + 9 * 3600)  # 09:00
    ids = [world.enqueue(pid, f"k{pid}") for pid in pids]
    world.dispatcher.drain()
    assert states(world, ids) == {"sent": 50, "queued": 70}
    waiting = [world.row(i) for i in ids if world.row(i).state == "queued"]
    assert {r.reason for r in waiting} == {
        "deferred: warm-up: 50 per day from shop.example (day 1 of the ramp)"}
    next_day = (world.clock.now() // DAY + 1) * DAY
    assert {r.next_attempt_at for r in waiting} == {int(next_day * 1000)}
    # A receipt still goes out at once (and counts towards the day).
    receipt = world.enqueue(pids[0], "receipt", message="receipt", kind="transactional",
                            data={"order": "A1"})
    world.dispatcher.drain()
    assert world.row(receipt).state == "sent"
    # `why` explains the wait.
    report = send_report(world.conn, waiting[0], None)
    assert "warm-up allowed no more email that day" in report["text"]
    world.clock.set(next_day + 60)
    world.dispatcher.drain()
    assert states(world, ids) == {"sent": 120}
    assert len(world.channels[0].sent) == 121
    # Each row was sent once, and every one that waited says so in its log.
    assert len({m.outbox_id for m in world.channels[0].sent}) == 121
    assert sum(1 for i in ids if outbox.outbox_log(world.conn, i)) == 70


def test_a_ramp_starts_on_its_first_day_and_ends(world: World) -> None:
    today = int(world.clock.now() // DAY)
    start = today - 2  # day 3 of [1, 2, 3] today; day 4 (no cap) tomorrow
    from datetime import date, timedelta

    start_date = (date(1970, 1, 1) + timedelta(days=start)).isoformat()
    use(world, rules_config(warmup={"shop.example": {"ramp": [1, 2, 3], "start": start_date}}))
    pids = people(world, 5)
    ids = [world.enqueue(pid, f"k{pid}") for pid in pids]
    world.dispatcher.drain()
    assert states(world, ids) == {"sent": 3, "queued": 2}
    world.clock.advance(DAY)
    world.dispatcher.drain()
    assert states(world, ids) == {"sent": 5}


def test_recipient_domain_throttle(world: World) -> None:
    use(world, rules_config(throttle={"google": {"domains": ["gmail.com", "googlemail.com"],
                                                 "per_hour": 2}}))
    gmail = people(world, 3, "gmail.com", "g") + people(world, 2, "googlemail.com", "m")
    other = people(world, 2, "example.com", "e")
    ids = [world.enqueue(pid, f"k{pid}") for pid in gmail + other]
    world.dispatcher.drain()
    assert [world.row(i).state for i in ids] == ["sent", "sent", "queued", "queued", "queued",
                                                  "sent", "sent"]
    assert world.row(ids[2]).reason == "deferred: recipient domain throttle: 2 per hour " \
                                       "to google"
    for expected in ({"sent": 6, "queued": 1}, {"sent": 7}):
        world.clock.advance(3600)
        world.dispatcher.drain()
        assert states(world, ids) == expected


def opened(world: World, user: str, days_ago: float, *, bot: bool = False,
           event: str = "Email Opened") -> None:
    props: dict[str, Any] = {"outbox_id": 1}
    if bot:
        props.update(bot=True, bot_reason="mail_proxy")
    ts = int((world.clock.now() - days_ago * DAY) * 1000)
    world.log.add("track", event=event, user_id=user, origin="email", ts=ts, received=ts,
                  properties=props)
    world.log.process()


def test_sunset_stops_marketing_to_people_who_stopped_reading(world: World) -> None:
    use(world, rules_config(sunset_days=30, sunset_exempt=["re_permission"]))
    ann, bob, cy, dan, eve = people(world, 5)  # first seen about 60 days ago
    opened(world, "p1", 5)                      # bob opened 5 days ago
    opened(world, "p2", 2, bot=True)            # cy: only a mail proxy "opened"
    opened(world, "p4", 40, event="Email Link Clicked")  # eve clicked, 40 days ago
    rows = {name: world.enqueue(pid, f"k{name}") for name, pid in
            (("ann", ann), ("bob", bob), ("cy", cy), ("eve", eve))}
    rows["dan"] = world.enqueue(dan, "kdan", journey="re_permission", step="1")
    rows["receipt"] = world.enqueue(ann, "r", message="receipt", kind="transactional",
                                    data={"order": "A1"})
    world.dispatcher.drain()
    state = {k: (world.row(v).state, world.row(v).reason) for k, v in rows.items()}
    skipped = ("skipped", "sunset: no open or click in 30 days")
    assert state == {"ann": skipped, "bob": ("sent", None), "cy": skipped, "eve": skipped,
                     "dan": ("sent", None), "receipt": ("sent", None)}
    report = send_report(world.conn, world.row(rows["ann"]), None)
    assert "stopped reading" in report["text"]


def test_sunset_reads_engagement_folded_before_it_was_kept(world: World) -> None:
    """A profile folded by an older Kanal has no engagement times: the timeline is read."""
    use(world, rules_config(sunset_days=30))
    (ann,) = people(world, 1)
    opened(world, "p0", 3)
    row = world.conn.execute("SELECT state FROM profiles WHERE id = ?", (ann,)).fetchone()
    state = json.loads(row[0])
    state.pop("eng_at")
    with transaction(world.conn):
        world.conn.execute("UPDATE profiles SET state = ? WHERE id = ?",
                           (json.dumps(state), ann))
    oid = world.enqueue(ann, "k")
    world.dispatcher.drain()
    assert world.row(oid).state == "sent"


@pytest.mark.parametrize(("deliverability", "words"), [
    ({"warmup": {"shop.example": {"ramp": []}}}, "ramp: a list of messages per day"),
    ({"warmup": {"shop.example": {"ramp": [50], "start": "soon"}}}, "start: a date"),
    ({"warmup": {"shop.example": {"cap": 5}}}, "cap: unknown key"),
    ({"throttle": {"gmail.com": {}}}, "set per_minute, per_hour or per_day"),
    ({"throttle": {"gmail.com": {"per_hour": "lots"}}}, "per_hour: a whole number"),
    ({"throttle": {"a": {"per_hour": 1, "domains": ["gmail.com"]},
                   "b": {"per_day": 1, "domains": ["gmail.com"]}}}, "already throttled"),
    ({"sunset_days": 0}, "sunset_days: a whole number of days"),
])
def test_bad_rules_are_refused_naming_the_key(deliverability: dict[str, Any],
                                              words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SendingRules.from_config(rules_config(**deliverability))
