"""Segments: definitions, membership as events arrive and as time passes, events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from profiles_util import T0, Log

from kanal_collector.profiles.segments import SegmentError, load_segments_file, parse_segments
from kanal_collector.profiles.step import SegmentSweeper, sweep
from kanal_collector.store import identities as identity_store
from kanal_collector.store import segments as segment_store
from kanal_collector.store.db import transaction

DAY = 86_400_000
SEGMENTS = """
segments:
  - name: shoe-lovers
    description: Viewed shoes at least 3 times in 7 days
    all:
      - event: Product Viewed
        min: 3
        within: 7d
        where: {category: shoes}
  - name: big-spenders
    all:
      - computed: revenue
        gt: 500
  - name: lapsed
    all:
      - computed: orders
        gte: 1
      - computed: last_order_at
        older_than: 90d
  - name: swedes-ok-to-email
    all:
      - any:
          - trait: country
            eq: SE
          - computed: country
            eq: SE
      - subscribed: email
"""


@pytest.fixture
def log(tmp_path: Path) -> Any:
    log = Log(tmp_path / "k.db")
    path = tmp_path / "segments.yml"
    path.write_text(SEGMENTS)
    with transaction(log.conn):
        segment_store.put_segment_definitions(
            log.conn, {s.name: s.definition for s in load_segments_file(path)}, T0)
    yield log
    log.close()


def now_ms(log: Log) -> int:
    return int(log.clock.now() * 1000)


def members(log: Log, name: str) -> list[str]:
    out = []
    for pid, _ in segment_store.segment_members(log.conn, name):
        out += [v for k, v in identity_store.profile_identities(log.conn, pid) if k == "user_id"]
    return sorted(out)


def segment_events(log: Log) -> list[tuple[str, str, str]]:
    return [(r[0], r[1], r[2]) for r in log.conn.execute(
        f"SELECT event, user_id, {log.conn.dialect.json_value('body', 'properties', 'segment')} "
        "FROM events "
        "WHERE key_kind = 'kanal' ORDER BY id")]


def test_event_count_window_with_filter_enters_and_leaves(log: Log) -> None:
    now = now_ms(log)
    for i, category in enumerate(["shoes", "Shoes", "hats", "shoes"]):
        log.add("track", event="Product Viewed", user_id="u1", ts=now - DAY - i,
                properties={"category": category})
    log.add("track", event="Product Viewed", user_id="u2", ts=now - DAY,
            properties={"category": "shoes"})
    log.process()
    assert members(log, "shoe-lovers") == ["u1"]
    assert segment_events(log) == [("Segment Entered", "u1", "shoe-lovers")]
    log.process()  # Kanal's own event goes on the timeline, nothing re-enters
    assert len(segment_events(log)) == 1
    # time passes: the views fall out of the 7-day window, the sweep notices
    log.clock.advance(7 * 86_400)
    sweeper = SegmentSweeper(log.db, log.clock, interval=3600)
    sweeper.run_once()
    assert members(log, "shoe-lovers") == []
    assert segment_events(log)[-1] == ("Segment Exited", "u1", "shoe-lovers")
    sweeper.run_once()  # not due again yet: nothing changes
    sweeper.close()
    assert len(segment_events(log)) == 2


def test_computed_and_time_conditions(log: Log) -> None:
    now = now_ms(log)
    log.add("track", event="Order Completed", user_id="rich", trusted=True, ts=now - DAY,
            properties={"order_id": "1", "revenue": 600})
    log.add("track", event="Order Completed", user_id="old", trusted=True, ts=now - 80 * DAY,
            properties={"order_id": "2", "revenue": 10})
    log.add("identify", user_id="sv", context={"locale": "sv-SE"})
    log.add("identify", user_id="sv2", traits={"country": "SE"})
    log.add("track", event="Unsubscribed", user_id="sv2")
    log.process()
    assert members(log, "big-spenders") == ["rich"]
    assert members(log, "lapsed") == []
    assert members(log, "swedes-ok-to-email") == ["sv"]
    log.clock.advance(11 * 86_400)
    sweep(log.conn, now_ms(log), trigger="test")
    assert members(log, "lapsed") == ["old"]


def test_merge_moves_membership_to_the_surviving_profile(log: Log) -> None:
    log.add("track", event="Order Completed", anon="a1", ts=now_ms(log) - DAY,
            properties={"revenue": 900})
    log.process()
    assert len(segment_store.segment_members(log.conn, "big-spenders")) == 1
    log.add("identify", user_id="u1", anon="a1")
    log.add("identify", user_id="u1", trusted=True)
    log.process()
    assert members(log, "big-spenders") == ["u1"]


@pytest.mark.parametrize(("doc", "message"), [
    ({"segments": [{"name": "x"}]}, "exactly one of all / any"),
    ({"segments": [{"name": "x", "all": [{"trait": "a", "eq": 1, "gt": 2}]}]},
     "exactly one operator"),
    ({"segments": [{"name": "x", "all": [{"computed": "nope", "eq": 1}]}]}, "computed: one of"),
    ({"segments": [{"name": "x", "all": [{"event": "E", "within": "soon"}]}]}, "duration"),
    ({"segments": [{"name": "x", "all": [{"computed": "revenue", "within": "7d"}]}]},
     "exactly one operator"),
    ({"segments": [{"name": "x", "all": [{"trait": "a", "eq": 1}]},
                   {"name": "x", "any": [{"trait": "a", "eq": 1}]}]}, "defined twice"),
    ({"segments": [{"name": "bad name", "all": [{"trait": "a", "eq": 1}]}]}, "name"),
    ({"segments": [{"name": "x", "all": [{"what": 1}]}]}, "a condition needs"),
    ({"segs": []}, "list of segments"),
])
def test_invalid_definitions_name_the_field(doc: Any, message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        parse_segments(doc)


def test_time_dependence_is_detected() -> None:
    found = {s.name: s.time_dependent for s in parse_segments({"segments": [
        {"name": "a", "all": [{"event": "E", "within": "1d"}]},
        {"name": "b", "all": [{"not": {"computed": "last_seen", "within": "30d"}}]},
        {"name": "c", "all": [{"computed": "revenue", "gt": 1}]},
    ]})}
    assert found == {"a": True, "b": True, "c": False}


def test_segments_cli_validate_apply_list_members(log: Log, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kanal_collector.cli import cli

    log.add("track", event="Order Completed", user_id="rich", trusted=True,
            ts=now_ms(log) - DAY, properties={"revenue": 800})
    log.process()
    runner = CliRunner()
    path = tmp_path / "segments.yml"
    assert "4 segments OK" in runner.invoke(cli, ["segments", "validate", str(path)]).output
    bad = tmp_path / "bad.yml"
    bad.write_text("segments:\n  - name: x\n    all: [{computed: wealth, gt: 1}]\n")
    result = runner.invoke(cli, ["segments", "validate", str(bad)])
    assert result.exit_code != 0 and "computed: one of" in result.output
    path.write_text(SEGMENTS.replace("gt: 500", "gt: 700"))
    db = ["--db", log.db.target]
    result = runner.invoke(cli, ["segments", "apply", str(path), *db])
    assert "1 new or changed, 0 removed; 1 memberships computed" in result.output
    assert "big-spenders\tv2\t1 members" in runner.invoke(cli, ["segments", "list", *db]).output
    assert "rich" in runner.invoke(cli, ["segments", "members", "big-spenders", *db]).output


def _shoe_fans(log: Log) -> tuple[int, int]:
    """Twelve people who viewed shoes: u0 three times six days ago (in the 7-day window
    for another day), u1 three times a day ago, u2-u11 once each. The profile ids of u0
    and u1."""
    now = now_ms(log)
    for user, ago in [("u0", 6 * DAY), ("u1", DAY)]:
        for i in range(3):
            log.add("track", event="Product Viewed", user_id=user, ts=now - ago + 10 * i,
                    properties={"category": "shoes"})
    for n in range(2, 12):
        log.add("track", event="Product Viewed", user_id=f"u{n}", ts=now - DAY,
                properties={"category": "shoes"})
    log.process()
    u0, u1 = (identity_store.find_profile(log.conn, u, "user_id") for u in ("u0", "u1"))
    assert u0 is not None and u1 is not None
    return u0, u1


def _spy(monkeypatch: pytest.MonkeyPatch, log: Log, stale: list[tuple[str, int, bool]],
         ) -> tuple[list[tuple[bool, list[int]]], list[int]]:
    """Record each test of memberships (in a transaction?, which profiles) and each write
    transaction a sweep opens; the first test outside a transaction also claims `stale`."""
    import kanal_collector.store.db as db_module
    from kanal_collector.profiles import step

    tests: list[tuple[bool, list[int]]] = []
    writes: list[int] = []
    real_changes, real_transaction = step.membership_changes, db_module.transaction

    def changes(conn: Any, segments: Any, ids: Any, now: int) -> Any:
        tests.append((conn.in_transaction, sorted(ids)))
        found = real_changes(conn, segments, ids, now)
        if not conn.in_transaction and len(tests) == 1:
            found = [*found, *stale]
        return found

    def transaction(conn: Any, **kw: Any) -> Any:
        writes.append(1)
        return real_transaction(conn, **kw)

    monkeypatch.setattr(step, "membership_changes", changes)
    monkeypatch.setattr(db_module, "transaction", transaction)
    return tests, writes


def test_a_sweep_takes_the_write_lock_only_for_the_memberships_it_changes(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    # A sweep that held the write lock for every chunk, one transaction after the
    # other, kept the server's other writers out for the whole sweep of a big database.
    u0, u1 = _shoe_fans(log)
    assert members(log, "shoe-lovers") == ["u0", "u1"]
    log.clock.advance(2 * 86_400)  # u0's views leave the 7-day window, u1's stay
    tests, writes = _spy(monkeypatch, log, [])
    done: list[int] = []
    assert sweep(log.conn, now_ms(log), trigger="t", chunk=5, progress=done.append) == 1
    outside = [ids for inside, ids in tests if not inside]
    # Chunk by chunk: every profile for `lapsed` (time brings people in), then only the
    # members of `shoe-lovers` (time only takes them out).
    assert [len(ids) for ids in outside] == [5, 5, 2, 2] == done
    assert outside[-1] == sorted([u0, u1])
    assert [ids for inside, ids in tests if inside] == [[u0]]  # tested again, to write
    assert len(writes) == 1
    assert members(log, "shoe-lovers") == ["u1"]
    assert segment_events(log)[-1] == ("Segment Exited", "u0", "shoe-lovers")


def test_a_sweep_writes_what_holds_when_it_writes(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the test outside the transaction found is tested again from the stored
    # profile before it is written: a change the processor made in between (here: a
    # claim that u1 leaves, which its stored views contradict) is not undone.
    _, u1 = _shoe_fans(log)
    tests, writes = _spy(monkeypatch, log, [("shoe-lovers", u1, False)])
    assert sweep(log.conn, now_ms(log), trigger="t", chunk=50) == 0
    assert [ids for inside, ids in tests if inside] == [[u1]]
    assert len(writes) == 1
    assert members(log, "shoe-lovers") == ["u0", "u1"]
    assert [e for e in segment_events(log) if e[0] == "Segment Exited"] == []
