"""KPI overview benchmark: `reports.kpis.overview` over a 90-day window, read from the
processor's daily aggregates, beside baselines measured in the same run on the same file:

    baseline: event counters   the part of the overview that always read the processor's
                               daily counters (event_stats), nothing else
    before: from the timelines the overview as it was before the aggregates: people and
                               conversions counted from profile_events JOIN events

and checks that both give the same answer. It also times the migration's backfill of the
aggregates (the database put back to schema 8 and migrated again) and, with
--processor, the processor with and without the aggregate writes.

    python bench/bench_overview.py                    # 50k events, 5k people
    python bench/bench_overview.py --events 1000000 --people 100000 --loads 5

Events are appended directly (page views, product views, sign-ups, orders with revenue,
some of Kanal's own deliveries) over 85 days; the real processor (stats, profiles) runs
over them in this process before anything is timed. Never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kanal_collector.clock import utc_iso
from kanal_collector.money import order_value
from kanal_collector.profiles import step as profiles_step
from kanal_collector.profiles.step import ProfilesStep
from kanal_collector.reports.kpis import day_name, overview
from kanal_collector.store import keys as keystore
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, append_events, event_row
from kanal_collector.store.schema import MIGRATIONS, migrate
from kanal_collector.workers import Processor, StatsStep

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from kanal_testing import downgrade  # noqa: E402

_AGGREGATES = next(i for i, m in enumerate(MIGRATIONS, 1)
                   if m.__name__ == "_m009_daily_aggregates")
"""The migration that made the daily aggregates (the backfill timed here)."""

DAY = 86_400_000
GOALS = ("Order Completed",)


def build(path: Path, events: int, people: int, seed: int = 11) -> int:
    """Append `events` unprocessed events of `people` people; returns how many."""
    rnd = random.Random(seed)
    now = int(time.time() * 1000)
    start = now - 85 * DAY
    db = Database(path, synchronous="OFF")
    conn = db.conn()
    migrate(conn)
    keystore.bootstrap(conn, start)
    source = keystore.source_id(conn, "default") or 1
    stamps = sorted(start + rnd.randrange(85 * DAY - 3_600_000) for _ in range(events))
    rows: list[EventRow] = []
    for n, ts in enumerate(stamps, start=1):
        user = f"u{rnd.randrange(people)}"
        iso = utc_iso(ts / 1000)
        body: dict[str, Any] = {"messageId": f"b{n}", "timestamp": iso, "receivedAt": iso,
                                "context": {"page": {"url": "https://shop.example/",
                                                     "referrer": "https://www.google.com/"},
                                            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}}
        anon: str | None = None
        if rnd.random() < 0.3:  # a visitor before signing in: merged later
            anon, user_id = f"{user}-d{rnd.randrange(3)}", None
        else:
            user_id = user
        origin, key_kind, kind, event = "web", "public", "page", None
        roll = rnd.random()
        if roll < 0.04 and user_id:
            origin, key_kind, kind, event = "server", "secret", "track", "Order Completed"
            body["properties"] = {"order_id": f"o{n}", "currency": "EUR",
                                  "revenue": round(rnd.uniform(15, 250), 2)}
        elif roll < 0.06 and user_id:
            kind, key_kind = "identify", "secret"
            anon = f"{user}-d{rnd.randrange(3)}"
            body["traits"] = {"email": f"{user}@example.com"}
        elif roll < 0.08 and user_id:
            origin, key_kind, kind, event = "email", "kanal", "track", "Email Delivered"
            body["properties"] = {"outbox_id": n}
        elif roll < 0.45:
            kind, event = "track", "Product Viewed"
            body["properties"] = {"product_id": f"p{rnd.randrange(50)}", "price": 49.5}
        body["type"] = kind
        if event:
            body["event"] = event
        if user_id:
            body["userId"] = user_id
        if anon:
            body["anonymousId"] = anon
        rows.append(event_row(source, body["messageId"], kind, event, user_id, anon, origin,
                              key_kind, int(key_kind != "public"), ts, ts, body, json.dumps))
        if len(rows) == 50_000:
            with transaction(conn):
                append_events(conn, rows)
            rows = []
    with transaction(conn):
        append_events(conn, rows)
    db.close()
    return events


def process(path: Path, *, aggregates: bool = True) -> tuple[int, float]:
    """Run the processor (stats, profiles) to the end of the log: (events, seconds)."""
    original = profiles_step._add_daily_activity
    if not aggregates:
        profiles_step._add_daily_activity = lambda conn, own: None  # type: ignore[assignment]
    db = Database(path, synchronous="OFF")
    processor = Processor(db, [StatsStep(), ProfilesStep()], batch_size=500)
    try:
        started = time.perf_counter()
        done = processor.catch_up()
        return done, time.perf_counter() - started
    finally:
        processor.close()
        db.close()
        profiles_step._add_daily_activity = original


# -- the overview before the aggregates: what the "before" line times ------------------

_PEOPLE_EVENTS = (
    "FROM profiles p JOIN profile_events pe ON pe.profile_id = p.id "
    "AND pe.timestamp >= ? AND pe.timestamp < ? "
    "JOIN events e ON e.id = pe.event_id "
    "WHERE p.last_seen >= ? AND e.key_kind != 'kanal'"
)


def overview_before(conn: sqlite3.Connection, since_ms: int, until_ms: int,
                    goals: Sequence[str]) -> dict[str, Any]:
    """The overview's figures as the timelines give them (the code the aggregates replaced)."""
    first, end = since_ms // DAY, -(-until_ms // DAY)
    start_ms, end_ms = first * DAY, end * DAY
    events: dict[str, dict[str, int]] = defaultdict(dict)
    for day, origin, n in conn.execute(
            "SELECT day, origin, sum(count) FROM event_stats WHERE day >= ? AND day <= ? "
            "GROUP BY day, origin", (day_name(first), day_name(end - 1))):
        events[day][origin] = n
    active = dict(conn.execute(
        f"SELECT pe.timestamp / {DAY}, count(DISTINCT pe.profile_id) {_PEOPLE_EVENTS} "
        f"GROUP BY pe.timestamp / {DAY}", (start_ms, end_ms, start_ms)).fetchall())
    total_active = conn.execute(f"SELECT count(DISTINCT pe.profile_id) {_PEOPLE_EVENTS}",
                                (start_ms, end_ms, start_ms)).fetchone()[0]
    marks = ",".join("?" * len(goals))
    conversions: dict[int, int] = defaultdict(int)
    revenue: dict[int, float] = defaultdict(float)
    for _, ts, properties in conn.execute(
            "SELECT DISTINCT e.id, e.timestamp, json_extract(e.body, '$.properties') "
            f"{_PEOPLE_EVENTS} AND e.type = 'track' AND e.event IN ({marks}) ORDER BY e.id",
            (start_ms, end_ms, start_ms, *goals)):
        conversions[ts // DAY] += 1
        revenue[ts // DAY] += order_value(properties)
    return {"active": {d: active.get(d, 0) for d in range(first, end)},
            "total_active": total_active,
            "conversions": {d: conversions.get(d, 0) for d in range(first, end)},
            "revenue": {d: round(revenue.get(d, 0.0), 2) for d in range(first, end)}}


def _same(report: dict[str, Any], before: dict[str, Any]) -> bool:
    first = report["since"] // DAY
    return (report["totals"]["active_profiles"] == before["total_active"] and all(
        (row["active_profiles"], row["conversions"], row["revenue"])
        == (before["active"][first + i], before["conversions"][first + i],
            before["revenue"][first + i])
        for i, row in enumerate(report["days"])))


def timed(call: Callable[[], Any], loads: int) -> tuple[float, float]:
    """(median, p95) milliseconds of `loads` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times) * 1000, p95 * 1000


def backfill_seconds(path: Path) -> float:
    """Put the database back at schema 8 (no aggregates, nor what later migrations made:
    the tests' `downgrade`) and time migrating it to the latest schema."""
    db = Database(path)
    try:
        with transaction(db.conn()) as conn:
            downgrade(conn, _AGGREGATES - 1)
        started = time.perf_counter()
        migrate(db.conn())
        return time.perf_counter() - started
    finally:
        db.close()


def main() -> None:
    """Build, process, time the overview against its baselines, time the backfill."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--processor", action="store_true",
                        help="also time the processor without the aggregate writes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "kanal.db"
        started = time.perf_counter()
        build(path, args.events, args.people)
        print(f"built {args.events:,} events ({args.people:,} people) in "
              f"{time.perf_counter() - started:.1f} s")
        if args.processor:
            plain = Path(name) / "plain.db"
            shutil.copy(path, plain)
            n, seconds = process(plain, aggregates=False)
            print(f"processor without aggregates: {n:,} events in {seconds:.1f} s "
                  f"({n / seconds:,.0f}/s)")
            plain.unlink()
        n, seconds = process(path)
        print(f"processor with aggregates:    {n:,} events in {seconds:.1f} s "
              f"({n / seconds:,.0f}/s)")
        db = Database(path)
        conn = db.conn()
        until = int(time.time() * 1000)
        since = until - 90 * DAY
        report = overview(conn, since_ms=since, until_ms=until, goal_events=GOALS)
        before = overview_before(conn, since, until, GOALS)
        print(f"totals: {report['totals']}")
        print(f"same numbers as from the timelines: {'yes' if _same(report, before) else 'NO'}")
        print(f"\n{'90-day overview':34} {'median ms':>10} {'p95 ms':>8}   ({args.loads} loads)")
        first, last = day_name(since // DAY), day_name(until // DAY)
        rows: list[tuple[str, Callable[[], Any]]] = [
            ("baseline: event counters", lambda: conn.execute(
                "SELECT day, origin, sum(count) FROM event_stats WHERE day >= ? AND day <= ? "
                "GROUP BY day, origin", (first, last)).fetchall()),
            ("before: from the timelines", lambda: overview_before(conn, since, until, GOALS)),
            ("overview (aggregates)", lambda: overview(conn, since_ms=since, until_ms=until,
                                                       goal_events=GOALS)),
        ]
        for label, call in rows:
            median, p95 = timed(call, args.loads)
            print(f"{label:34} {median:10.1f} {p95:8.1f}")
        sizes = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("events", "profile_events", "track_daily")}
        sizes["profiles with active days"] = conn.execute(
            "SELECT count(*) FROM profiles WHERE active_days IS NOT NULL").fetchone()[0]
        db.close()
        print(f"\nrows: {sizes}")
        print(f"migration backfill (schema {_AGGREGATES - 1} → {len(MIGRATIONS)}): "
              f"{backfill_seconds(path):.2f} s")


if __name__ == "__main__":
    sys.exit(main())
