"""Operator pages benchmark: how long the dashboard's People, Messages, Segments, Events
and Settings pages take at 1×, 10× and 100× the data, beside a baseline measured in the
same run on the same file: one full scan of the event log and the outbox (what a page
whose filter read its whole table on every request would pay at least).

    python bench/bench_operator_pages.py                 # 2k, 20k, 200k events
    python bench/bench_operator_pages.py --base 5000 --loads 20

Each scale gets its own SQLite file: events appended directly (bench_overview.build:
page views, product views, sign-ups, orders), the real processor (stats, profiles) run
over them, then outbox rows (one per 5 events; 1 in 100 failed, 1 in 1000 by sms),
refused events (one per 50), and a segment holding every third profile with 30 days of
daily counts, all written directly. Pages are loaded through the Flask test client in
this process, signed in; median and p95 are printed. Never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overview import build, process, timed  # noqa: E402

from kanal_collector.app import close_app, create_app  # noqa: E402
from kanal_collector.clock import FakeClock  # noqa: E402
from kanal_collector.config import Config  # noqa: E402
from kanal_collector.store import keys as keystore  # noqa: E402
from kanal_collector.store import outbox  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.events import FailedRow, append_failed  # noqa: E402
from kanal_collector.store.segments import put_segment_definitions  # noqa: E402

DAY = 86_400_000
BASELINE = "baseline: full scan of events+outbox"


def fill(path: Path, events: int) -> str:
    """Outbox rows, refused events, a segment with its daily counts; an admin key."""
    db = Database(path, synchronous="OFF")
    conn = db.conn()
    now = int(time.time() * 1000)
    profiles = [int(r[0]) for r in conn.execute("SELECT id FROM profiles ORDER BY id")]
    with transaction(conn):
        for n in range(events // 5):
            state = "failed" if n % 100 == 0 else "sent"
            channel = "sms" if n % 1000 == 0 else "email"
            outbox.insert(conn, outbox.NewRow(
                f"b{n}", profiles[n % len(profiles)], "cart", "marketing", "cart", channel,
                [channel], "welcome", "1", {}, state, None, 0, now - (events - n) * 1000))
        append_failed(conn, [FailedRow(1, "public", now - n, "track needs an event name",
                                       json.dumps({"type": "track", "userId": f"u{n}"}))
                             for n in range(events // 50)])
        put_segment_definitions(conn, {"buyers": {"all": [{"event": "Order Completed"}]}},
                                now)
        conn.executemany("INSERT INTO segment_members (segment, profile_id, entered_at) "
                         "VALUES ('buyers', ?, ?)", [(p, now) for p in profiles[::3]])
        conn.executemany("INSERT INTO segment_days (segment, day, members, recorded_at) "
                         "VALUES ('buyers', ?, ?, ?)",
                         [(now // DAY - d, len(profiles) // 3 - d, now) for d in range(30)])
    key = keystore.create_key(conn, "admin", now)
    db.close()
    return key


def pages(pid: int, email: str) -> list[tuple[str, str]]:
    """(label, path) of every page timed."""
    return [
        ("people: search an email", f"/dashboard/people?q={email}"),
        ("people: listing, page 3", "/dashboard/people?offset=100"),
        ("a person's page", f"/dashboard/people/{pid}"),
        ("messages: newest", "/dashboard/messages"),
        ("messages: state=failed", "/dashboard/messages?state=failed"),
        ("messages: channel=sms (rare)", "/dashboard/messages?channel=sms"),
        ("events: newest", "/dashboard/events"),
        ("events: event=Order Completed", "/dashboard/events?event=Order+Completed"),
        ("events: one person", f"/dashboard/events?person={email}"),
        ("events: failed", "/dashboard/events/failed"),
        ("segments", "/dashboard/segments"),
        ("a segment", "/dashboard/segments/buyers"),
        ("settings", "/dashboard/settings"),
    ]


def run_scale(events: int, loads: int) -> dict[str, float]:
    """Build one file of `events` events and time every page on it: {label: median ms}."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "kanal.db"
        started = time.perf_counter()
        build(path, events, max(events // 10, 10))
        process(path)
        key = fill(path, events)
        print(f"\n== {events:,} events (built and processed in "
              f"{time.perf_counter() - started:.1f} s)")
        app = create_app(Config(db=str(path)), clock=FakeClock(time.time()))
        try:
            client = app.test_client()
            form = client.get("/dashboard/login").get_data(as_text=True)
            token = re.search(r'name="login_csrf" value="([^"]+)"', form)
            assert token is not None
            r = client.post("/dashboard/login", data={"key": key,
                                                      "login_csrf": token.group(1)})
            assert r.status_code == 303, r.status_code
            conn = app.extensions["kanal"].db.conn()
            pid = int(conn.execute("SELECT profile_id FROM identities WHERE kind = 'email' "
                                   "ORDER BY profile_id LIMIT 1").fetchone()[0])
            email = str(conn.execute("SELECT value FROM identities WHERE kind = 'email' "
                                     "AND profile_id = ?", (pid,)).fetchone()[0])

            def full_scan() -> None:
                # What an unbounded filter would read: every row of both tables.
                conn.execute("SELECT count(*) FROM events WHERE event = 'Nothing'").fetchone()
                conn.execute("SELECT count(*) FROM outbox WHERE message = 'x'").fetchone()

            median, p95 = timed(full_scan, loads)
            out[BASELINE] = median
            print(f"{'page':40} {'median ms':>10} {'p95 ms':>8}   ({loads} loads each)")
            print(f"{BASELINE:40} {median:10.2f} {p95:8.2f}")
            for label, url in pages(pid, email):
                def get(url: str = url) -> None:
                    r = client.get(url)
                    if r.status_code != 200:
                        raise SystemExit(f"{url}: {r.status_code}")
                median, p95 = timed(get, loads)
                out[label] = median
                print(f"{label:40} {median:10.2f} {p95:8.2f}")
        finally:
            close_app(app)
    return out


def main() -> None:
    """Time every page at 1×, 10× and 100× --base events; print how each grew."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=2_000, help="events at 1×")
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()
    scales = [1, 10, 100]
    results = [run_scale(args.base * s, args.loads) for s in scales]
    print(f"\nGrowth of the median from 1× to 10× to 100× ({args.base:,} events at 1×):")
    for label in results[0]:
        first = results[0][label]
        print(f"{label:40} " + "  ".join(f"{s:>3}×: {r[label] / first:5.1f}"
                                          for s, r in zip(scales, results, strict=True)))


if __name__ == "__main__":
    main()
