"""Several nodes on one database, in one test process: node leases, claims that skip each
other, caps that see other nodes' sends, wake-ups, shared workers, and a processor that
misses no event two writers append side by side.

The real thing (three `kanal serve` processes, kill -9) is tests/test_multinode.py.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import POSTGRES, db_at
from messages_util import World

from kanal_collector.clock import FakeClock
from kanal_collector.config import Config
from kanal_collector.ingest.writer import EventWriter
from kanal_collector.messages.controls import Controls
from kanal_collector.nodes import Wakeups
from kanal_collector.store import journeys, leases
from kanal_collector.store import outbox as store
from kanal_collector.store.connection import OUTBOX, Connection
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, StoredEvent, append_events
from kanal_collector.store.schema import migrate
from kanal_collector.workers import Processor, Supervisor

postgres_only = pytest.mark.skipif(not POSTGRES, reason="several nodes share PostgreSQL")
A, B = "shop-1:11:aaaa", "shop-2:22:bbbb"


def _until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_node_leases_tell_the_live_from_the_gone(log: Any) -> None:
    conn = log.conn
    assert leases.tick(conn, A, 100.0, 15.0)  # A takes the workers' lease too
    assert not leases.tick(conn, B, 101.0, 15.0)
    assert leases.live_nodes(conn, 110.0) == [A, B]
    assert leases.holder(conn, leases.WORKERS) == (A, 115.0)
    assert leases.live_nodes(conn, 115.5) == [B]  # A stopped renewing
    assert leases.tick(conn, B, 116.0, 15.0)  # and B takes over


@postgres_only
def test_two_nodes_racing_for_an_expired_lease_never_both_win(log: Any) -> None:
    assert leases.acquire(log.conn, leases.WORKERS, "dead", 0.0, 15.0)  # expired at 15
    a, b = log.db.connect(), log.db.connect()
    a.begin(claim=True)
    assert leases._acquire(a, leases.WORKERS, A, 100.0, 15.0)  # not committed yet …
    won: list[bool] = []
    thread = threading.Thread(target=lambda: won.append(
        leases.acquire(b, leases.WORKERS, B, 100.0, 15.0)))
    thread.start()  # … B's upsert waits for A's row lock, then sees A's lease
    assert _until(lambda: log.conn.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0)
    a.commit()
    thread.join(20)
    assert won == [False]
    assert leases.holder(log.conn, leases.WORKERS) == (A, 115.0)
    a.close()
    b.close()


def _claim_and_prepare(world: World, owner: str) -> tuple[Any, Any]:
    """Node `owner`'s dispatcher claims the due rows and prepares the first."""
    dispatcher = world.make_dispatcher(owner=owner)
    claimed = dispatcher._claim(dispatcher._connection())
    prepared = dispatcher._prepare(dispatcher._connection(), claimed[0])
    assert prepared is not None
    return dispatcher, prepared


def test_a_gone_nodes_sends_are_settled_and_a_live_ones_are_not(world: World) -> None:
    pid = world.person("u1", email="a@example.com")
    maybe, untouched = (world.enqueue(pid, f"k{i}") for i in range(2))
    now = world.clock.now()
    leases.tick(world.conn, A, now, 15.0)
    leases.tick(world.conn, B, now, 15.0)
    a, prepared = _claim_and_prepare(world, A)
    world.channels[0].send(prepared.message)  # A is calling the provider
    b = world.make_dispatcher(owner=B)
    assert b.recover() == 0  # A is alive: its claims are its own
    assert world.row(maybe).state == "sending"
    world.clock.advance(16)  # A dies: it stops renewing; B goes on
    leases.tick(world.conn, B, world.clock.now(), 15.0)
    assert b.recover() == 2
    assert world.row(maybe).state == "in_doubt"  # maybe sent: never again
    assert world.row(untouched).state == "queued"  # never handed over: B sends it
    b.drain()
    assert [m.outbox_id for m in world.channels[0].sent] == [maybe, untouched]
    a.close()
    b.close()


def test_caps_count_what_another_node_is_sending(tmp_path: Path) -> None:
    world = World(tmp_path / "k.db", batch_size=1)
    try:
        controls = Controls.from_config(Config(sections={"frequency": {"per_day": 1}}))
        pid = world.person("u1", email="a@example.com")
        first, second = (world.enqueue(pid, f"k{i}") for i in range(2))
        a = world.make_dispatcher(owner=A, controls=controls)
        claimed = a._claim(a._connection())
        assert [r.id for r in claimed] == [first]
        prepared = a._prepare(a._connection(), claimed[0])
        assert prepared is not None  # A is about to call the provider …
        b = world.make_dispatcher(owner=B, controls=controls)
        assert b.run_once() == 1  # … when B looks at the second row
        assert world.row(second).state == "queued"
        assert (world.row(second).reason or "").startswith("deferred: frequency cap")
        assert world.channels[0].sent == []
        a.close()
        b.close()
    finally:
        world.close()


@postgres_only
def test_two_nodes_claim_side_by_side(world: World) -> None:
    pids = [world.person(f"u{i}", email=f"p{i}@example.com") for i in range(4)]
    ids = [world.enqueue(pids[i % 4], f"k{i}") for i in range(20)]
    a = world.log.db.connect()
    a.begin(claim=True)  # A's claim is still open (its transaction holds 5 rows) …
    mine = store.claim(a, "email", int(world.clock.now() * 1000), 5, token="a", owner=A)
    b = world.make_dispatcher(owner=B)
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.extend(b._claim(b._connection())))
    thread.start()
    thread.join(30)
    finished = not thread.is_alive()
    a.commit()  # … while B claims the rest without waiting for it
    thread.join(30)
    assert finished, "B waited for the rows A was claiming"
    assert sorted(r.id for r in mine + theirs) == ids
    assert {r.id for r in mine}.isdisjoint(r.id for r in theirs)
    a.close()
    b.close()


def test_a_webhook_call_is_claimed_by_one_node_until_that_node_is_gone(log: Any) -> None:
    a, b = log.db.connect(), log.db.connect()
    with transaction(log.conn) as conn:
        journeys.set_timer(conn, 7, 1_000, "2", "call")
        journeys.set_timer(conn, 8, 1_000, "1", "wait")  # not a call: never claimed here
    with transaction(a, claim=True):
        taken = journeys.claim_calls(a, 1_000, 20, until=16_000)
    assert [(t.run_id, t.due_at) for t in taken] == [(7, 16_000)]
    with transaction(b, claim=True):
        assert journeys.claim_calls(b, 2_000, 20, until=17_000) == []  # A is calling
    with transaction(b, claim=True):  # A died mid-call: the timer is due again
        assert [t.run_id for t in journeys.claim_calls(b, 16_000, 20, until=31_000)] == [7]
    a.close()
    b.close()


def test_a_schedule_chunk_scanned_by_one_node_is_not_scanned_again(log: Any) -> None:
    with transaction(log.conn) as conn:
        journeys.set_schedule(conn, "weekly", 1_000)
    due = journeys.due_schedules(log.conn, 1_000)  # both nodes see it due …
    with transaction(log.conn) as conn:  # … node A scans the first chunk
        assert journeys.claim_schedule(conn, "weekly", 1_000) == (1_000, 0)
        journeys.schedule_progress(conn, "weekly", 1_000, 500)
    with transaction(log.conn) as conn:  # node B goes on after it, not from the start
        assert due == [("weekly", 1_000, 0)]
        assert journeys.claim_schedule(conn, "weekly", 1_000) == (1_000, 500)
        journeys.schedule_progress(conn, "weekly", 8_000, 0)  # done: next week
    with transaction(log.conn) as conn:
        assert journeys.claim_schedule(conn, "weekly", 1_000) is None


class _Idle:
    def __init__(self, name: str, wakes_on: Sequence[str] = (), shared: bool = False) -> None:
        self.name = name
        self.wakes_on = tuple(wakes_on)
        self.shared = shared
        self.runs = 0

    def run_once(self) -> int:
        self.runs += 1
        return 0


@postgres_only
def test_hints_wake_another_nodes_workers(log: Any) -> None:
    wake_events, wake_outbox = threading.Event(), threading.Event()
    wakeups = Wakeups(log.db, [(_Idle("processor", ["events"]), wake_events),
                               (_Idle("dispatcher", ["outbox"]), wake_outbox)])
    wakeups.start()
    try:
        listening = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                     "'kanal-listen' AND query = 'LISTEN kanal_outbox'")
        assert _until(lambda: log.conn.execute(listening).fetchone()[0] == 1)
        with pytest.raises(RuntimeError), transaction(log.db.connect()) as conn:
            conn.hint(OUTBOX)
            raise RuntimeError("rolled back: its hint is never heard")
        log.add("track", event="E", user_id="u1")  # a committed append hints "events"
        assert wake_events.wait(20)
        assert not wake_outbox.is_set()
        with transaction(log.conn) as conn:
            conn.hint(OUTBOX)
        assert wake_outbox.wait(20)
        assert wakeups.heard == 2
    finally:
        wakeups.stop()


def test_shared_workers_run_on_every_node_but_not_during_a_rebuild(log: Any) -> None:
    clock = FakeClock(1000.0)

    def node(owner: str) -> tuple[Supervisor, _Idle, _Idle]:
        single, shared = _Idle("single"), _Idle("shared", shared=True)
        sup = Supervisor(log.db, clock, [(single, threading.Event()),
                                         (shared, threading.Event())],
                         lease_seconds=0.3, poll_interval=0.02, owner=owner)
        return sup, single, shared

    a, a_single, _ = node(A)
    b, b_single, b_shared = node(B)
    a.start()
    assert _until(lambda: a.holds_lease)
    b.start()
    try:
        assert _until(lambda: b.decided.is_set())
        if POSTGRES:  # the shared worker runs on B too; the singleton only on A
            assert _until(lambda: b_shared.runs > 2)
        else:  # SQLite: one process runs every worker
            assert not b.shared.workers and b_shared.runs == 0
        assert a_single.runs > 0 and b_single.runs == 0
    finally:
        a.stop()
        b.stop()
    # Every node stopped; `kanal profiles rebuild` holds the lease; a node starts.
    rebuild = "rebuild:shop-3:33"
    assert leases.acquire(log.conn, leases.WORKERS, rebuild, clock.now(), 3600.0)
    c, c_single, c_shared = node("shop-4:44:cccc")
    c.start()
    try:
        assert _until(lambda: c.decided.is_set())
        assert not c.holds_lease and not c.shared.running  # nothing runs meanwhile
        assert c_single.runs == 0 and c_shared.runs == 0
        leases.release(log.conn, leases.WORKERS, rebuild)
        assert _until(lambda: c.holds_lease and c_single.runs > 0)
        if POSTGRES:
            assert _until(lambda: c_shared.runs > 0)
    finally:
        c.stop()


class _Seen:
    """A processor step that records the ids it applies."""

    name = "seen"

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.messages: list[str] = []

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        self.ids += [e.id for e in events]
        self.messages += [e.message_id for e in events]


def _rows(prefix: str, n: int, numbers: Any) -> list[EventRow]:
    now = int(time.time() * 1000)
    return [EventRow(1, f"{prefix}-{next(numbers)}", "track", "E", "u", None, "server",
                     "secret", 1, now, now, json.dumps({"n": i})) for i in range(n)]


def test_the_processor_misses_nothing_two_nodes_append(tmp_path: Path) -> None:
    """Node 1 appends in long transactions (a batch, then it holds on before committing),
    node 2 in short ones (single events through its group commit), while a processor on a
    third connection reads all along: it applies every acknowledged event, once, in id
    order. On PostgreSQL ids are handed out in one order across nodes (the append lock),
    so `id > cursor` skips none committed late."""
    url = db_at(tmp_path / "k.db")
    setup = Database(url)
    migrate(setup.conn())
    with transaction(setup.conn()) as conn:
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', 0)")
    nodes = [Database(url), Database(url), Database(url)]
    seen = _Seen()
    processor = Processor(nodes[2], [seen], batch_size=7)
    acked: list[str] = []
    numbers = itertools.count()
    done = threading.Event()

    def long_transactions() -> None:
        conn = nodes[0].connect_spinning()
        for _ in range(15):
            rows = _rows("long", 40, numbers)
            with transaction(conn, spin=10.0, writer=False):
                append_events(conn, rows)
                time.sleep(0.02)  # still parsing the rest of its group
            acked.extend(r.message_id for r in rows)
        conn.close()

    def short_transactions() -> None:
        writer = EventWriter(nodes[1])
        for _ in range(200):
            rows = _rows("short", 1, numbers)
            writer.write(rows)
            acked.extend(r.message_id for r in rows)
        writer.close()

    def process() -> None:
        while not done.is_set():
            processor.run_once()

    threads = [threading.Thread(target=f) for f in (long_transactions, short_transactions)]
    reader = threading.Thread(target=process)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    reader.join(60)
    processor.catch_up()
    processor.close()
    assert len(acked) == 15 * 40 + 200
    assert sorted(seen.messages) == sorted(acked)  # every one, once
    assert seen.ids == sorted(seen.ids)
    for db in (*nodes, setup):
        db.close()
