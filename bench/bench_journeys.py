"""Journeys benchmark (same run, same machine):

- processor events/s with 50 active journeys, beside the same events with none;
- due timers fired per second with 100k waiting runs (--million: 1M), beside the raw
  rate of deleting the same number of timer rows;
- latency from a triggering event to its immediate send (append → processor → outbox
  row), beside the same append → processor with no journeys.

    python bench/bench_journeys.py [--events 50000] [--timers 100000] [--million]

Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_profiles import T0, fill  # noqa: E402

from kanal_collector.clock import FakeClock  # noqa: E402
from kanal_collector.journeys import Evaluator, JourneysStep, TimerWorker, sync  # noqa: E402
from kanal_collector.profiles.step import ProfilesStep, SegmentsStep  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.events import append_events, event_row  # noqa: E402
from kanal_collector.store.schema import migrate  # noqa: E402
from kanal_collector.workers import Processor, StatsStep  # noqa: E402

KINDS = [
    ("Product Viewed", "where: {category: shoes}",
     "  - wait: 1h\n  - send: m\n    channel: email\n"),
    ("Order Completed", "", "  - wait: 3d\n  - send: m\n    channel: preferred\n"
                            "    fallbacks: [email]\n"),
    ("Product Added", "", "  - wait_for: {event: Order Completed, timeout: 1h}\n"
                          "    on_timeout: [{send: m, channel: email}]\n"),
    ("Email Opened", "", "  - if: {computed: orders, gte: 1}\n    then: [{send: m}]\n"),
]


def write_journeys(folder: Path, count: int) -> None:
    """`count` journeys over the benchmark's event names, with goals and entry rules."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        event, where, steps = KINDS[i % len(KINDS)]
        (folder / f"j{i}.yaml").write_text(
            f"trigger:\n  event: {event}\n  {where}\n"
            f"entry: {{rule: once_per, period: 1d}}\n"
            f"goal: {{event: Order Completed, within: 7d}}\n"
            f"steps:\n{steps}")


def processor(db: Database, clock: FakeClock, journeys: bool) -> Processor:
    steps = [StatsStep(), ProfilesStep(), SegmentsStep(clock)]
    if journeys:
        steps.append(JourneysStep(evaluator=Evaluator(clock=clock)))
    return Processor(db, steps)


def events_per_second(tmp: Path, events: int) -> None:
    """Processor throughput with 50 journeys beside none, on the same events."""
    rates = {}
    for label, with_journeys in (("no journeys", False), ("50 journeys", True)):
        db = Database(tmp / f"ev-{with_journeys}.db", synchronous="NORMAL")
        migrate(db.conn())
        clock = FakeClock(T0 / 1000)
        total = fill(db, max(events // 10, 1), 10)
        if with_journeys:
            write_journeys(tmp / "journeys50", 50)
            with transaction(db.conn()) as conn:
                sync(conn, tmp / "journeys50", T0)
        proc = processor(db, clock, with_journeys)
        started = time.perf_counter()
        done = proc.catch_up()
        seconds = time.perf_counter() - started
        rates[label] = done / seconds
        runs = db.conn().execute("SELECT count(*) FROM journey_runs").fetchone()[0]
        print(f"  {label:>12}: {done} of {total} events in {seconds:.1f} s = "
              f"{done / seconds:,.0f} events/s ({runs} runs started)")
        proc.close()
        db.close()
    print(f"  journeys cost: {rates['50 journeys'] / rates['no journeys']:.0%} of the "
          "baseline rate")


def timers_per_second(tmp: Path, waiting: int) -> None:
    """Fire `waiting` due timers (each then queues a send) beside raw deletes."""
    db = Database(tmp / f"timers-{waiting}.db", synchronous="NORMAL")
    conn = db.conn()
    migrate(conn)
    folder = tmp / "timer-journeys"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text("trigger: {event: Go}\nsteps:\n  - wait: 1h\n"
                                   "  - send: m\n    channel: email\n")
    with transaction(conn):
        sync(conn, folder, T0)
        conn.execute("INSERT INTO profiles (created_at, state) VALUES (?, '{}')", (T0,))
        for start in range(0, waiting, 50_000):
            n = min(50_000, waiting - start)
            conn.executemany(
                "INSERT INTO journey_runs (id, journey, version, profile_id, state, step, "
                "context, entered_at, updated_at) VALUES (?, 't', 1, 1, 'active', '1', "
                "'{}', ?, ?)", ((start + i + 1, T0, T0) for i in range(n)))
            conn.executemany(
                "INSERT INTO journey_timers (run_id, due_at, step, kind) "
                "VALUES (?, ?, '1', 'wait')",
                ((start + i + 1, T0 + random.randrange(3_600_000)) for i in range(n)))
    clock = FakeClock(T0 / 1000 + 7200)
    worker = TimerWorker(db, clock, batch_size=500)
    started = time.perf_counter()
    fired = 0
    while n := worker.fire_due():
        fired += n
    seconds = time.perf_counter() - started
    sent = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    print(f"  fired {fired:,} timers in {seconds:.1f} s = {fired / seconds:,.0f} timers/s "
          f"({sent:,} outbox rows)")
    worker.close()
    # Baseline: only deleting the same number of timer rows, 500 per transaction.
    with transaction(conn):
        conn.executemany("INSERT INTO journey_timers (run_id, due_at, step, kind) "
                         "VALUES (?, ?, '1', 'wait')", ((i + 1, T0) for i in range(waiting)))
    started = time.perf_counter()
    while True:
        with transaction(conn):
            ids = [r[0] for r in conn.execute(
                "SELECT run_id FROM journey_timers ORDER BY due_at LIMIT 500")]
            if not ids:
                break
            conn.executemany("DELETE FROM journey_timers WHERE run_id = ?",
                             [(i,) for i in ids])
    base = time.perf_counter() - started
    print(f"  baseline (delete only): {waiting / base:,.0f} rows/s")
    db.close()


def latency(tmp: Path, samples: int = 300) -> None:
    """Trigger → outbox row through the processor, beside the processor alone."""
    for with_journeys in (False, True):
        db = Database(tmp / f"lat-{with_journeys}.db", synchronous="NORMAL")
        conn = db.conn()
        migrate(conn)
        clock = FakeClock(T0 / 1000)
        from kanal_collector.store import keys as keystore

        source = keystore.create_source(conn, "default", T0)
        if with_journeys:
            folder = tmp / "latency-journeys"
            write_journeys(folder, 49)
            (folder / "now.yaml").write_text("trigger: {event: Go}\nentry: {rule: every_time}"
                                             "\nsteps:\n  - send: m\n    channel: email\n")
            with transaction(conn):
                sync(conn, folder, T0)
        proc = processor(db, clock, with_journeys)
        times = []
        for i in range(samples):
            body = {"type": "track", "event": "Go", "userId": f"u{i}", "messageId": f"l{i}"}
            row = event_row(source, f"l{i}", "track", "Go", f"u{i}", None, "server", "secret",
                            1, T0 + i, T0 + i, body, json.dumps)
            started = time.perf_counter()
            with transaction(conn):
                append_events(conn, [row])
            proc.catch_up()
            times.append(time.perf_counter() - started)
        sent = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        label = "50 journeys, send at once" if with_journeys else "no journeys"
        times.sort()
        print(f"  {label:>26}: median {statistics.median(times) * 1000:.2f} ms, "
              f"p95 {times[int(len(times) * 0.95)] * 1000:.2f} ms ({sent} outbox rows)")
        proc.close()
        db.close()


def main() -> None:
    """Run the three figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1M waiting runs as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print(f"processor, {args.events:,} events:")
        events_per_second(tmp, args.events)
        for waiting in [args.timers] + ([1_000_000] if args.million else []):
            print(f"due timers, {waiting:,} waiting runs:")
            timers_per_second(tmp, waiting)
        print("trigger → immediate send:")
        latency(tmp)


if __name__ == "__main__":
    main()
