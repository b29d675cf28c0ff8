"""The sweeper re-tests only the members of segments that time alone can only shrink, and
the processor re-tests the people of every event that may change a segment: together
they keep every membership what testing every profile against every segment gives."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from profiles_util import Log

from kanal_collector.clock import utc_iso
from kanal_collector.profiles import step
from kanal_collector.profiles.segments import parse_condition, parse_segments
from kanal_collector.store import segments as segment_store
from kanal_collector.store.db import transaction
from kanal_collector.store.events import append_events, event_row

HOUR = 3_600_000
DAY = 24 * HOUR


def only_loses(condition: dict[str, Any]) -> bool:
    segment = parse_segments({"segments": [{"name": "s", "all": [parse_condition(condition)]}]})[0]
    return segment.only_loses_with_time


@pytest.mark.parametrize(("condition", "expected"), [
    ({"event": "Product Viewed", "min": 3, "within": "7d"}, True),
    ({"event": "Product Viewed", "min": 1, "max": 3, "within": "7d"}, False),
    ({"event": "Product Viewed", "min": 3}, False),  # not time-dependent at all
    ({"computed": "last_seen", "within": "7d"}, True),
    ({"computed": "last_order_at", "older_than": "30d"}, False),
    ({"not": {"computed": "last_seen", "within": "7d"}}, False),
    ({"not": {"computed": "last_order_at", "older_than": "30d"}}, True),
    ({"any": [{"computed": "last_seen", "within": "7d"},
              {"event": "Order Completed", "within": "1d"}]}, True),
    ({"all": [{"computed": "last_seen", "within": "7d"},
              {"computed": "last_order_at", "older_than": "30d"}]}, False),
    ({"any": [{"event": "Order Completed", "within": "1d"},
              {"trait": "vip", "eq": True}]}, True),
])
def test_which_segments_time_can_only_shrink(condition: dict[str, Any],
                                             expected: bool) -> None:
    assert only_loses(condition) is expected


SEGMENTS = """
segments:
  - name: viewed-twice-in-3-days       # time only takes members out
    all:
      - event: Product Viewed
        min: 2
        within: 3d
  - name: opened-an-email-lately       # Kanal's own events (opens) bring people in
    all:
      - computed: last_email_engagement
        within: 2d
  - name: delivered-to-lately          # a delivery changes no profile; a segment counts it
    all:
      - event: Email Delivered
        within: 3d
  - name: lapsed                       # time brings people in
    all:
      - computed: orders
        gte: 1
      - computed: last_order_at
        older_than: 4d
  - name: quiet                        # time brings people in, through a not
    all:
      - not:
          computed: last_seen
          within: 2d
  - name: seen-lately-not-today        # either way, through last seen alone
    all:
      - computed: last_seen
        within: 4d
      - not:
          computed: last_seen
          within: 1d
  - name: at-most-one-view-in-3-days   # either way
    all:
      - event: Product Viewed
        max: 1
        within: 3d
  - name: vip-seen-lately              # a journey's set_trait (Kanal's identify)
    all:
      - trait: vip
        eq: true
      - computed: last_seen
        within: 2d
"""


def define(log: Log) -> list[Any]:
    """SEGMENTS, stored as `kanal segments apply` stores them."""
    segments = parse_segments(yaml.safe_load(SEGMENTS))
    with transaction(log.conn):
        segment_store.put_segment_definitions(
            log.conn, {s.name: s.definition for s in segments}, 0)
    return segments


def own_event(log: Log, type: str, name: str | None, user: str, ts: int, origin: str,
              **fields: Any) -> None:
    """One of Kanal's own events (key kind kanal), as its tracking, dispatcher or journeys
    write them."""
    number = next(log._ids)  # the same numbering as Log.add
    body: dict[str, Any] = {"type": type, "messageId": f"own{number}", "userId": user,
                            "timestamp": utc_iso(ts / 1000), **fields}
    if name is not None:
        body["event"] = name
    row = event_row(log.source, body["messageId"], type, name, user, None, origin, "kanal",
                    1, ts, ts, body, json.dumps)
    with transaction(log.conn):
        append_events(log.conn, [row])


@pytest.mark.parametrize("seed", range(3))
def test_sweeps_and_batches_keep_memberships_those_of_testing_everyone(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    log = Log(tmp_path / "k.db")
    try:
        segments = define(log)
        tested: list[int] = []
        members: dict[str, set[int]] = {}
        members_only = 0
        real = step.membership_changes

        def counting(conn: Any, segs: Any, ids: Any, now_ms: int) -> Any:
            nonlocal members_only
            tested.extend(ids)
            if all(s.only_loses_with_time for s in segs):  # only their members tested
                assert set(ids) <= set().union(*(members[s.name] for s in segs))
                members_only += 1
            return real(conn, segs, ids, now_ms)

        users = [f"u{n}" for n in range(15)]
        swept = 0
        since = None
        had_members: set[str] = set()
        for round_number in range(12):
            log.clock.advance(rnd.randrange(2, 20) * 3600)
            now = int(log.clock.now() * 1000)
            for user in rnd.choices(users, k=16):
                ts = now - rnd.randrange(DAY)
                kind = rnd.randrange(6)
                if kind == 0:
                    log.add("track", event="Product Viewed", user_id=user, ts=ts)
                elif kind == 1:
                    log.add("track", event="Order Completed", user_id=user, trusted=True,
                            ts=ts, properties={"order_id": f"{user}-{ts}", "revenue": 30})
                elif kind == 2:  # an open through Kanal's tracking
                    own_event(log, "track", "Email Opened", user, ts, "email")
                elif kind == 3:  # a delivery the dispatcher wrote
                    own_event(log, "track", "Email Delivered", user, ts, "server")
                elif kind == 4:  # a journey's set_trait
                    own_event(log, "identify", None, user, now, "server",
                              traits={"vip": rnd.random() < 0.7})
                else:  # an old order imported now: history, not now
                    log.add("track", event="Order Completed", user_id=user, trusted=True,
                            ts=now - rnd.randrange(3, 9) * DAY,
                            properties={"order_id": f"{user}-old-{round_number}",
                                        "revenue": 30})
            log.process()
            monkeypatch.setattr(step, "membership_changes", counting)
            tested.clear()
            members = {s.name: {pid for pid, _ in segment_store.segment_members(
                log.conn, s.name, limit=1000)} for s in segments}
            swept += step.sweep(log.conn, now, trigger=f"t{round_number}", since_ms=since)
            since = now
            monkeypatch.setattr(step, "membership_changes", real)
            ids = [int(r[0]) for r in log.conn.execute("SELECT id FROM profiles")]
            assert real(log.conn, segments, ids, now) == [], f"round {round_number}"
            # Those swept: every profile once (lapsed, quiet, at most one view), the
            # members of the rest once, and again those whose membership changed.
            assert len(tested) < 2 * len(ids) + 3 * len(users)
            had_members |= {n for n, c in segment_store.segment_counts(log.conn).items() if c}
        assert swept > 0  # time moved people in and out
        assert members_only > 0
        assert had_members == {s.name for s in segments}
    finally:
        log.close()


def test_the_sweepers_first_sweep_tests_everyone(tmp_path: Path) -> None:
    # A process that stopped between an event and its re-test leaves a member out; the
    # first sweep of the next one tests every profile and brings them in.
    log = Log(tmp_path / "k.db")
    try:
        define(log)
        now = int(log.clock.now() * 1000)
        for user in ("u1", "u2"):
            for _ in range(2):
                log.add("track", event="Product Viewed", user_id=user, ts=now - HOUR)
        log.process()
        u1, u2 = log.pid("u1"), log.pid("u2")
        name = "viewed-twice-in-3-days"

        def left_out(pid: Any) -> None:
            with transaction(log.conn):
                segment_store.set_memberships(log.conn, [(name, pid, False)], now)

        left_out(u1)
        sweeper = step.SegmentSweeper(log.db, log.clock, interval=60)
        sweeper.run_once()
        assert {p for p, _ in segment_store.segment_members(log.conn, name)} == {u1, u2}
        left_out(u2)
        log.clock.advance(61)
        sweeper.run_once()  # only the members of a segment time can only shrink
        assert {p for p, _ in segment_store.segment_members(log.conn, name)} == {u1}
        sweeper.close()
    finally:
        log.close()


@pytest.mark.parametrize(("condition", "expected"), [
    ({"not": {"computed": "last_seen", "within": "7d"}}, [("last_seen", 7 * DAY)]),
    ({"computed": "last_seen", "older_than": "2d"}, [("last_seen", 2 * DAY)]),
    ({"computed": "last_seen", "within": "7d"}, []),  # time only takes members out
    ({"computed": "last_order_at", "older_than": "30d"}, None),  # no column of its own
    ({"event": "Product Viewed", "max": 1, "within": "3d"}, None),
    ({"not": {"event": "Product Viewed", "within": "3d"}}, None),
    ({"all": [{"computed": "orders", "gte": 1},
              {"not": {"computed": "last_seen", "within": "30d"}}]},
     [("last_seen", 30 * DAY)]),
])
def test_which_segments_time_brings_people_into_through_last_seen(
        condition: dict[str, Any], expected: list[tuple[str, int]] | None) -> None:
    segment = parse_segments({"segments": [{"name": "s", "all": [parse_condition(condition)]}]})[0]
    assert segment.rises_through() == expected


def test_a_sweep_tests_only_those_whose_last_seen_crossed_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = Log(tmp_path / "k.db")
    try:
        segments = parse_segments(yaml.safe_load("""
segments:
  - name: quiet
    all:
      - not:
          computed: last_seen
          within: 2d
"""))
        with transaction(log.conn):
            segment_store.put_segment_definitions(
                log.conn, {s.name: s.definition for s in segments}, 0)
        t0 = int(log.clock.now() * 1000)
        for user, ago in (("u1", DAY), ("u2", 10 * HOUR), ("u3", 5 * DAY)):
            log.add("track", event="Product Viewed", user_id=user, ts=t0 - ago)
        log.process()
        pids = {u: log.pid(u) for u in ("u1", "u2", "u3")}
        step.sweep(log.conn, t0, trigger="t0")
        assert {p for p, _ in segment_store.segment_members(log.conn, "quiet")} == {pids["u3"]}
        tested: list[int] = []
        real = step.membership_changes

        def counting(conn: Any, segs: Any, ids: Any, now_ms: int) -> Any:
            tested.extend(ids)
            return real(conn, segs, ids, now_ms)

        monkeypatch.setattr(step, "membership_changes", counting)
        log.clock.advance(25 * 3600)  # u1 is now 2 days and an hour quiet, u2 not yet
        t1 = int(log.clock.now() * 1000)
        assert step.sweep(log.conn, t1, trigger="t1", since_ms=t0) == 1
        assert set(tested) == {pids["u1"]}
        assert {p for p, _ in segment_store.segment_members(log.conn, "quiet")} == {
            pids["u1"], pids["u3"]}
    finally:
        log.close()
