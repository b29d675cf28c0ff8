"""The overview's daily aggregates (people's active days, active_spans, track_daily) stay
equal to a count from the timelines and the log through merges, `kanal forget`, `kanal
profiles rebuild`, a crashed batch and the migrations that backfill and move them."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
from kanal_testing import downgrade
from profiles_util import T0, Log

from kanal_collector.money import order_value
from kanal_collector.own_events import own_event
from kanal_collector.profiles.privacy import forget
from kanal_collector.profiles.rebuild import rebuild
from kanal_collector.profiles.step import ProfilesStep, SegmentsStep
from kanal_collector.reports.funnels import money
from kanal_collector.reports.kpis import day_name, overview
from kanal_collector.store.activity import NO_DAY, decode_days, encode_days
from kanal_collector.store.connection import Connection
from kanal_collector.store.events import StoredEvent
from kanal_collector.store.reports import (
    active_spans,
    daily_aggregates,
    recount_active_days,
    recount_track_events,
)
from kanal_collector.store.schema import MIGRATIONS, migrate, schema_version
from kanal_collector.tracking.events import append
from kanal_collector.workers import Processor, StatsStep

DAY = 86_400_000
GOALS = ("Order Completed", "Subscription Started")


def _history(log: Log, seed: int, n: int = 250) -> None:
    """People on several devices who sign in (merges), orders of every shape, Kanal's
    own deliveries: what the aggregates must follow."""
    rnd = random.Random(seed)
    users = [f"u{i}" for i in range(12)]
    # each device belongs to one person (a{i} to u{i % 12}); a30 and up stay anonymous
    anons = [f"a{i}" for i in range(40)]
    for i in range(n):
        kind = rnd.choice(["page", "track", "track", "track", "identify"])
        if rnd.random() < 0.03:
            kind = "alias"
        device = rnd.randrange(40)
        user = users[device % 12] if device < 30 and rnd.random() < 0.5 else None
        anon = anons[device] if user is None or rnd.random() < 0.3 else None
        ts = T0 + rnd.randrange(0, 12 * DAY)
        properties = rnd.choice([
            {"order_id": f"o{i}", "revenue": round(rnd.uniform(1, 300), 2)},
            {"total": str(rnd.randrange(50))},
            {"products": [{"price": 2.5, "quantity": rnd.randrange(1, 4)}, {"price": 1}]},
            {"revenue": "NaN"},
            {"value": 7},
            {},
        ])
        log.add(kind, user_id=user, anon=anon, trusted=rnd.random() < 0.1, ts=ts,
                received=ts + rnd.choice([0, 0, 5_000, -5_000]),
                event=rnd.choice([*GOALS, "Product Viewed"]) if kind == "track" else None,
                origin=rnd.choice(["web", "app", "server"]),
                previous_id=anons[device] if kind == "alias" else None,
                traits={"email": f"{user}@x.io"} if kind == "identify" and user else None,
                properties=properties if kind == "track" else None)
        if rnd.random() < 0.08 and user:
            append(log.conn, [own_event(
                name="Email Delivered", message_id=f"kanal-d-{i}", origin="email",
                properties={"outbox_id": i}, user_id=user, anonymous_id=None,
                source_id=log.source, now_ms=ts + rnd.randrange(1, 4) * DAY)])


def _expected(conn: Connection) -> tuple[set[tuple[int, int]],
                                                  dict[tuple[int, str], tuple[int, float]]]:
    tracks: dict[tuple[int, str], tuple[int, float]] = {}
    for ts, name, properties in recount_track_events(conn):
        n, revenue = tracks.get((ts // DAY, name), (0, 0.0))
        tracks[(ts // DAY, name)] = (n + 1, revenue + order_value(properties))
    return recount_active_days(conn), tracks


def _spans(active: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    days: dict[int, list[int]] = defaultdict(list)
    for day, pid in active:
        days[pid].append(day)
    spans: Counter[tuple[int, int]] = Counter()
    for person in days.values():
        for prev, day in zip([NO_DAY, *sorted(person)], sorted(person), strict=False):
            spans[(day, prev)] += 1
    return dict(spans)


def assert_matches_log(conn: Connection) -> None:
    """The stored aggregates equal a recount from the timelines and the log."""
    active, tracks = daily_aggregates(conn)
    want_active, want_tracks = _expected(conn)
    assert active == want_active
    assert active_spans(conn) == _spans(want_active)
    assert {k: n for k, (n, _) in tracks.items()} == {k: n for k, (n, _) in
                                                       want_tracks.items()}
    for key, (_, revenue) in tracks.items():
        assert revenue == pytest.approx(want_tracks[key][1], abs=1e-6), key


def _merges(conn: Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM merges").fetchone()[0])


def test_live_processing_with_merges_matches_the_log(log: Log) -> None:
    _history(log, seed=3)
    log.process()
    assert _merges(log.conn) > 3  # the history does merge people
    active, tracks = daily_aggregates(log.conn)
    assert len(active) > 20 and sum(n for n, _ in tracks.values()) > 50
    # no row of a merged-away profile survives
    pids = {int(r[0]) for r in log.conn.execute("SELECT id FROM profiles")}
    assert {pid for _, pid in active} <= pids
    assert_matches_log(log.conn)


@pytest.mark.parametrize(("start", "days"), [(0, 13), (3, 4), (5, 1), (11, 6), (20, 2)])
def test_overview_reads_what_the_timelines_say(log: Log, start: int, days: int) -> None:
    _history(log, seed=5)
    log.process()
    first = T0 // DAY + start
    report = overview(log.conn, since_ms=first * DAY + 7, until_ms=(first + days) * DAY,
                      goal_events=GOALS)
    assert len(report["days"]) == days
    want_active, _ = _expected(log.conn)
    goals = [(ts // DAY, order_value(p)) for ts, name, p in recount_track_events(log.conn)
             if name in GOALS and first <= ts // DAY < first + days]
    for offset, row in enumerate(report["days"]):
        day = first + offset
        assert row["day"] == day_name(day)
        assert row["active_profiles"] == len({p for d, p in want_active if d == day})
        assert row["conversions"] == sum(1 for d, _ in goals if d == day)
        assert row["revenue"] == money(sum(v for d, v in goals if d == day))
    assert report["totals"]["active_profiles"] == len(
        {p for d, p in want_active if first <= d < first + days})
    assert report["totals"]["conversions"] == len(goals)
    if start < 12:
        assert report["totals"]["active_profiles"] > 3


def test_forget_takes_a_person_out(log: Log) -> None:
    _history(log, seed=11)
    log.add("identify", user_id="ann", anon="ann-phone", trusted=True,
            traits={"email": "ann@x.io"}, ts=T0 + DAY)
    log.add("track", event="Order Completed", anon="ann-phone", ts=T0 + 2 * DAY,
            properties={"revenue": 40})
    log.add("track", event="Order Completed", user_id="ann", ts=T0 + 3 * DAY,
            properties={"revenue": 60.5}, trusted=True)
    log.process()
    ann = log.pid("ann")
    assert ann is not None
    before, _ = daily_aggregates(log.conn)
    assert {d for d, p in before if p == ann} == {T0 // DAY + 1, T0 // DAY + 2,
                                                  T0 // DAY + 3}
    forget(log.conn, "ann@x.io", T0)
    after, _ = daily_aggregates(log.conn)
    assert not {p for _, p in after} & {ann}
    assert_matches_log(log.conn)
    # forgetting someone else whose days other people share keeps those people
    forget(log.conn, "u1", T0)
    assert_matches_log(log.conn)
    assert daily_aggregates(log.conn)[0]


def test_forgotten_events_of_another_timeline_are_taken_out(log: Log) -> None:
    # Bob orders on a device Alice signed in on: an untrusted event can't merge two
    # people, so it lands on Bob's timeline; forgetting Alice deletes every event that
    # names her device, Bob's order and his only event of that day included.
    log.add("identify", user_id="alice", anon="shared", trusted=True, ts=T0)
    log.add("identify", user_id="bob", trusted=True, ts=T0)
    log.add("page", user_id="bob", ts=T0 + DAY)
    log.add("track", event="Order Completed", user_id="bob", anon="shared", ts=T0 + 2 * DAY,
            properties={"revenue": 5})
    log.add("track", event="Order Completed", user_id="bob", ts=T0 + 3 * DAY,
            properties={"revenue": 8})
    log.process()
    bob, day = log.pid("bob"), T0 // DAY
    assert bob is not None and bob != log.pid("alice")
    assert daily_aggregates(log.conn)[1][(day + 2, "Order Completed")] == (1, 5.0)
    forget(log.conn, "alice", T0)
    assert_matches_log(log.conn)
    assert daily_aggregates(log.conn) == (
        {(day, bob), (day + 1, bob), (day + 3, bob)},
        {(day + 3, "Order Completed"): (1, 8.0)})
    # Bob's days ride on his profile row: the first, then each one's distance.
    assert log.conn.execute("SELECT active_days FROM profiles WHERE id = ?",
                            (bob,)).fetchone()[0] == f"{day},1,2"


def test_rebuild_recomputes_them(log: Log) -> None:
    _history(log, seed=17)
    log.process()
    live = daily_aggregates(log.conn)
    # something the log doesn't say, which a rebuild must not keep
    log.conn.execute("INSERT INTO track_daily VALUES (1, 'Order Completed', 5, 9.0)")
    log.conn.execute("UPDATE profiles SET active_days = '1' WHERE id = 1")
    rebuild(log.conn, log.clock, batch_size=13)
    active, tracks = daily_aggregates(log.conn)
    assert_matches_log(log.conn)
    assert len(active) == len(live[0])
    assert {k: n for k, (n, _) in tracks.items()} == {k: n for k, (n, _) in live[1].items()}


class _CrashOnce:
    """A step after the profiles step that, once armed, fails the next batch."""

    name = "crash-once"

    def __init__(self) -> None:
        self.armed = False

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        if self.armed:
            self.armed = False
            raise RuntimeError("crash mid-batch")


def test_a_crashed_batch_is_counted_once(log: Log) -> None:
    _history(log, seed=23, n=120)
    crash = _CrashOnce()
    processor = Processor(log.db, [StatsStep(), ProfilesStep(), crash,
                                   SegmentsStep(log.clock)], batch_size=40)
    try:
        assert processor.run_once() == 40  # a first batch goes through
        crash.armed = True
        with pytest.raises(RuntimeError):
            processor.run_once()  # the second one fails after the profiles step
        assert processor.catch_up() > 0  # and is replayed
    finally:
        processor.close()
    assert_matches_log(log.conn)
    _, tracks = daily_aggregates(log.conn)
    assert sum(n for n, _ in tracks.values()) == len(recount_track_events(log.conn)) > 20


_VERSION_9 = 9


def _downgrade(conn: Connection) -> None:
    """Put a database back where version 8 left it (before the aggregates existed)."""
    downgrade(conn, _VERSION_9 - 1)


def test_the_migration_backfills_what_the_processor_wrote(log: Log) -> None:
    assert MIGRATIONS[_VERSION_9 - 1].__name__ == "_m009_daily_aggregates"
    _history(log, seed=29)
    log.process()
    forget(log.conn, "u2", T0)
    written = daily_aggregates(log.conn)
    spans = active_spans(log.conn)
    report = overview(log.conn, since_ms=T0, until_ms=T0 + 13 * DAY, goal_events=GOALS)
    _downgrade(log.conn)
    assert migrate(log.conn) == len(MIGRATIONS) == schema_version(log.conn)
    active, tracks = daily_aggregates(log.conn)
    assert active == written[0]
    assert active_spans(log.conn) == spans
    assert tracks.keys() == written[1].keys()
    for key, (n, revenue) in tracks.items():
        assert n == written[1][key][0]
        assert revenue == pytest.approx(written[1][key][1], abs=1e-6)
    assert overview(log.conn, since_ms=T0, until_ms=T0 + 13 * DAY,
                    goal_events=GOALS) == report
    # and the processor carries on from there
    log.add("track", event="Order Completed", user_id="u3", ts=T0 + DAY,
            properties={"revenue": 1})
    log.process()
    assert_matches_log(log.conn)


def test_migration_34_puts_the_active_days_on_the_profile_rows(log: Log) -> None:
    assert MIGRATIONS[33].__name__ == "_m034_active_days_on_the_profile"
    _history(log, seed=31)
    log.process()
    forget(log.conn, "u4", T0)
    written = daily_aggregates(log.conn)
    spans = active_spans(log.conn)
    downgrade(log.conn, 33)
    assert {(int(d), int(p)) for d, p in log.conn.execute(
        "SELECT day, profile_id FROM active_days")} == written[0]
    assert "active_days" not in log.conn.dialect.columns(log.conn, "profiles")
    assert migrate(log.conn) == len(MIGRATIONS)
    assert "active_days" not in log.conn.dialect.tables(log.conn)
    assert daily_aggregates(log.conn) == written
    assert active_spans(log.conn) == spans
    # Later batches go on from there: a late day between a person's days, a new person,
    # a merge of two people who both have days.
    log.add("page", user_id="u5", ts=T0 - 3 * DAY)
    log.add("page", anon="newcomer", ts=T0 + 20 * DAY)
    merges = _merges(log.conn)
    days = {p: {d for d, q in written[0] if q == p} for p in (log.pid("u6"), log.pid("a35"))}
    assert all(days.values()) and len(days) == 2
    log.add("alias", user_id="u6", previous_id="a35", ts=T0 + 21 * DAY)
    log.process()
    assert _merges(log.conn) == merges + 1
    assert_matches_log(log.conn)


@pytest.mark.parametrize("days", [[], [20419], [20419, 20420, 20426], [-3, -1, 0, 5],
                                  list(range(0, 3000, 7))])
def test_active_days_read_back_as_written(days: list[int]) -> None:
    text = encode_days(days)
    assert text is None if not days else isinstance(text, str)
    assert decode_days(text) == days


def test_an_empty_database_migrates(tmp_path: Path) -> None:
    log = Log(tmp_path / "kanal.db")
    try:
        _downgrade(log.conn)
        migrate(log.conn)
        assert daily_aggregates(log.conn) == (set(), {})
        assert active_spans(log.conn) == {}
    finally:
        log.close()


@pytest.mark.parametrize(("properties", "value"), [
    ({"revenue": 20, "total": 5}, 20.0),
    ('{"total": "12.5"}', 12.5),
    ({"products": [{"price": 5, "quantity": 2}, {"price": 0.5}]}, 10.5),
    ({"revenue": "NaN"}, 0.0),
    ({"revenue": "inf"}, 0.0),
    ("not json", 0.0),
    ("[1, 2]", 0.0),
    (None, 0.0),
])
def test_order_value(properties: object, value: float) -> None:
    assert order_value(properties) == value
