"""Profiles benchmark: processor events/s beside the raw rate of reading the same events
from the log (same run), and profile lookup latency by identity.

    python bench/bench_profiles.py               # 100k profiles
    python bench/bench_profiles.py --million     # 1M profiles as well (slow, large)

Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from kanal_collector.profiles.step import ProfilesStep, SegmentsStep
from kanal_collector.profiles.views import lookup
from kanal_collector.store import keys as keystore
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, append_events, event_row, events_after
from kanal_collector.store.schema import migrate
from kanal_collector.store.segments import put_segment_definitions
from kanal_collector.workers import Processor, StatsStep

T0 = 1_700_000_000_000
SEGMENTS = {
    "plan-a": {"all": [{"trait": "plan", "eq": "a"}]},
    "buyers": {"all": [{"computed": "orders", "gte": 1}]},
    "big-spenders": {"all": [{"computed": "revenue", "gt": 400}]},
    "shoe-lovers": {"all": [{"event": "Product Viewed", "min": 2,
                             "where": {"category": "shoes"}}]},
}


def fill(db: Database, people: int, events_per_person: float, seed: int = 1) -> int:
    """A realistic mix: anonymous browsing, identifies, orders, email engagement."""
    rnd = random.Random(seed)
    conn = db.conn()
    source = keystore.create_source(conn, "default", T0)
    rows: list[EventRow] = []
    n = 0

    def add(kind: str, event: str | None, user: str | None, anon: str | None, origin: str,
            trusted: bool, extra: dict[str, object]) -> None:
        nonlocal n
        n += 1
        ts = T0 + n * 10
        body = {"type": kind, "messageId": f"m{n}", "userId": user, "anonymousId": anon,
                "event": event, **extra}
        rows.append(event_row(source, f"m{n}", kind, event, user, anon, origin,
                              "secret" if trusted else "public", int(trusted), ts, ts,
                              body, json.dumps))

    total = int(people * events_per_person)
    while n < total:
        p = rnd.randrange(people)
        anon, user = f"anon-{p}", f"user-{p}"
        r = rnd.random()
        if r < 0.45:
            add("page", None, None, anon, "web", False, {"name": "Product"})
        elif r < 0.65:
            add("track", "Product Viewed", None, anon, "web", False,
                {"properties": {"category": rnd.choice(["shoes", "hats", "bags"])}})
        elif r < 0.75:
            add("identify", None, user, anon, "web", False, {"traits": {"name": f"P{p}"}})
        elif r < 0.82:
            add("identify", None, user, None, "server", True,
                {"traits": {"email": f"p{p}@example.com", "plan": rnd.choice("abc")}})
        elif r < 0.90:
            add("track", "Order Completed", user, None, "server", True,
                {"properties": {"order_id": f"o{n}", "revenue": rnd.randrange(10, 500)}})
        else:
            add("track", "Email Opened", user, None, "email", True, {})
        if len(rows) >= 5000:
            with transaction(conn):
                append_events(conn, rows)
            rows.clear()
    with transaction(conn):
        append_events(conn, rows)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="also 1M profiles")
    parser.add_argument("--events-per-profile", type=float, default=4.0)
    parser.add_argument("--segments", action="store_true",
                        help="with a few segments (trait, computed, event counts)")
    args = parser.parse_args()
    sizes = [args.profiles] + ([1_000_000] if args.million else [])
    for people in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(Path(tmp) / "bench.db", synchronous="NORMAL")
            migrate(db.conn())
            n = fill(db, people, args.events_per_profile)
            conn = db.conn()
            start = time.perf_counter()
            position = 0
            while batch := events_after(conn, position, 500):
                position = batch[-1].id
            read_rate = n / (time.perf_counter() - start)
            if args.segments:
                with transaction(conn):
                    put_segment_definitions(conn, SEGMENTS, T0)
            proc = Processor(db, [StatsStep(), ProfilesStep(), SegmentsStep()], batch_size=500)
            start, cpu = time.perf_counter(), time.process_time()
            proc.catch_up()
            rate = n / (time.perf_counter() - start)
            cpu_us = (time.process_time() - cpu) / n * 1e6
            proc.close()
            count = conn.execute("SELECT count(*) FROM profiles").fetchone()[0]
            rnd = random.Random(2)
            samples = []
            for _ in range(2000):
                p = rnd.randrange(people)
                value = rnd.choice([f"user-{p}", f"anon-{p}", f"p{p}@example.com"])
                t = time.perf_counter()
                lookup(conn, value)
                samples.append((time.perf_counter() - t) * 1e6)
            samples.sort()
            print(f"{people:>9,} people, {n:,} events, {count:,} profiles")
            print(f"  read the log (baseline): {read_rate:>10,.0f} events/s")
            print(f"  processor (stats+profiles+segments): {rate:>10,.0f} events/s "
                  f"({rate / read_rate:.1%} of raw read), {cpu_us:.1f} µs CPU/event"
                  + (f", {len(SEGMENTS)} segments" if args.segments else ""))
            print(f"  lookup by identity: median {statistics.median(samples):.0f} µs, "
                  f"p99 {samples[int(len(samples) * 0.99)]:.0f} µs")
            db.close()


if __name__ == "__main__":
    main()
