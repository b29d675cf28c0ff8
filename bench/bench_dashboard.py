"""Dashboard benchmark: how long the overview and attribution pages take to load from a
real collector with a realistic database, beside baselines measured in the same run from
the same server: GET /healthz (the process answers) and GET /dashboard/login (a
template rendered through the dashboard's own middleware, no report).

    python bench/bench_dashboard.py                      # 50k events, 2k orders, 5k people
    python bench/bench_dashboard.py --events 20000 --orders 800 --loads 30

The database gets its events directly (web pages with UTM or referrers, product views,
sign-ups, orders from the backend) and one journey with a holdout split; the collector
process then runs its real processor over them (profiles, daily counters, journey runs)
before anything is timed. Each page is loaded --loads times over HTTP (keep-alive, the
signed-in cookie); median and p95 are printed. Never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kanal_testing import start_collector  # noqa: E402

from kanal_collector.clock import utc_iso  # noqa: E402
from kanal_collector.config import Config  # noqa: E402
from kanal_collector.journeys.timers import sync  # noqa: E402
from kanal_collector.reports import views  # noqa: E402
from kanal_collector.store import keys as keystore  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.events import EventRow, append_events, event_row  # noqa: E402
from kanal_collector.store.schema import migrate  # noqa: E402

DAY = 86_400_000
CAMPAIGNS = [("newsletter", "email", "spring_sale"), ("google", "cpc", "brand"),
             ("facebook", "paid_social", "retarget"), ("partner", "affiliate", "deals")]
REFERRERS = ["https://www.google.com/", "https://l.facebook.com/", "https://www.bing.com/",
             "https://blog.example.org/best-shoes", ""]
JOURNEY = """\
    trigger: {event: Signed Up}
    goal: {event: Order Completed, within: 7d}
    steps:
      - split:
          holdout: 50
          arms:
            - {name: mail, steps: [{wait: 1d}]}
    """


def build(path: Path, journeys: Path, events: int, orders: int, people: int,
          seed: int = 11) -> int:
    """Write the events (unprocessed) and the journey; returns the number of events."""
    rnd = random.Random(seed)
    now = int(time.time() * 1000)
    start = now - 85 * DAY
    db = Database(path, synchronous="OFF")
    conn = db.conn()
    migrate(conn)
    keystore.bootstrap(conn, start)
    source = keystore.source_id(conn, "default") or 1
    journeys.mkdir(exist_ok=True)
    (journeys / "welcome.yaml").write_text(textwrap.dedent(JOURNEY), encoding="utf-8")
    with transaction(conn):
        sync(conn, journeys, start)
    plan: list[tuple[int, str]] = [(start + rnd.randrange(85 * DAY - 3_600_000), "order")
                                   for _ in range(orders)]
    signups = min(people, max(events // 20, 1))
    plan += [(start + rnd.randrange(85 * DAY - 3_600_000), "signup") for _ in range(signups)]
    plan += [(start + rnd.randrange(85 * DAY - 3_600_000), "visit")
             for _ in range(max(events - len(plan), 0))]
    plan.sort()  # a log arrives roughly in time order
    rows: list[EventRow] = []
    for n, (ts, what) in enumerate(plan, start=1):
        user = f"u{rnd.randrange(people)}"
        iso = utc_iso(ts / 1000)
        body: dict[str, Any] = {"messageId": f"b{n}", "userId": user, "timestamp": iso,
                                "receivedAt": iso, "context": {}}
        origin, key_kind, kind, event = "web", "public", "page", None
        if what == "order":
            origin, key_kind, kind, event = "server", "secret", "track", "Order Completed"
            body["properties"] = {"order_id": f"o{n}", "currency": "EUR",
                                  "revenue": round(rnd.uniform(15, 250), 2)}
        elif what == "signup":
            origin, key_kind, kind, event = "server", "secret", "track", "Signed Up"
        elif rnd.random() < 0.4:
            src, medium, name = rnd.choice(CAMPAIGNS)
            body["context"] = {"campaign": {"source": src, "medium": medium, "name": name},
                               "page": {"url": f"https://shop.example/?utm_source={src}"
                                               f"&utm_medium={medium}&utm_campaign={name}",
                                        "referrer": ""}}
        elif rnd.random() < 0.5:
            body["context"] = {"page": {"url": "https://shop.example/",
                                        "referrer": rnd.choice(REFERRERS)}}
        else:
            kind, event = "track", "Product Viewed"
            body["properties"] = {"product_id": f"p{rnd.randrange(50)}", "price": 49.5}
        body["type"] = kind
        if event:
            body["event"] = event
        rows.append(event_row(source, body["messageId"], kind, event, user, None, origin,
                              key_kind, int(key_kind == "secret"), ts, ts, body, json.dumps))
    with transaction(conn):
        append_events(conn, rows)
    db.close()
    return len(rows)


def sign_in(url: str, admin_key: str) -> requests.Session:
    """A session signed in to the dashboard."""
    session = requests.Session()
    form = session.get(f"{url}/dashboard/login", timeout=30).text
    match = re.search(r'name="login_csrf" value="([^"]+)"', form)
    if match is None:
        raise SystemExit("no sign-in form")
    r = session.post(f"{url}/dashboard/login", timeout=30, allow_redirects=False,
                     data={"key": admin_key, "login_csrf": match.group(1)})
    if r.status_code != 303:
        raise SystemExit(f"sign-in failed: {r.status_code}")
    return session


def measure(session: requests.Session, url: str, loads: int) -> list[float]:
    """Seconds per GET of `url`, `loads` times (after one warm-up load)."""
    session.get(url, timeout=120).raise_for_status()
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        r = session.get(url, timeout=120)
        times.append(time.perf_counter() - started)
        r.raise_for_status()
    return times


def main() -> None:
    """Build, let the collector process everything, sign in, time the pages."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=2_000)
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        started = time.perf_counter()
        total = build(tmp / "kanal.db", tmp / "journeys", args.events, args.orders,
                      args.people)
        print(f"built {total:,} events ({args.orders:,} orders, {args.people:,} people) in "
              f"{time.perf_counter() - started:.1f} s")
        conn = Database(tmp / "kanal.db").conn()
        admin_key = keystore.create_key(conn, "admin", int(time.time() * 1000))
        conn.close()
        started = time.perf_counter()
        collector = start_collector(tmp / "kanal.db",
                                    env={"KANAL_JOURNEYS_DIR": str(tmp / "journeys")})
        try:
            headers = {"Authorization": f"Bearer {admin_key}"}
            counted = 0
            while time.perf_counter() - started < 600:
                overview = requests.get(f"{collector.url}/api/reports/overview?since=90d",
                                        headers=headers, timeout=60).json()
                counted = overview["totals"]["events"]
                if counted >= total:
                    break
                time.sleep(0.5)
            print(f"processed {counted:,} events in {time.perf_counter() - started:.1f} s "
                  f"(profiles {overview['totals']['profiles']:,}, conversions "
                  f"{overview['totals']['conversions']:,})")
            journeys = requests.get(f"{collector.url}/api/reports/journeys?since=90d",
                                    headers=headers, timeout=60).json()["journeys"]
            print("journey runs: " + ", ".join(f"{j['journey']} entered {j['entered']}"
                                              for j in journeys))
            signed_in = sign_in(collector.url, admin_key)
            signed_out = requests.Session()  # the sign-in form is shown only signed out
            pages = [("baseline GET /healthz", "/healthz", signed_out),
                     ("baseline GET /dashboard/login", "/dashboard/login", signed_out),
                     ("overview (90d)", "/dashboard/?since=90d", signed_in),
                     ("attribution (90d)", "/dashboard/attribution?since=90d", signed_in),
                     ("journeys (90d)", "/dashboard/journeys?since=90d", signed_in),
                     ("experiments (90d)", "/dashboard/experiments?since=90d", signed_in)]
            print(f"\n{'page':32} {'median ms':>10} {'p95 ms':>8}   ({args.loads} loads each)")
            for label, path, session in pages:
                times = sorted(measure(session, collector.url + path, args.loads))
                p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
                print(f"{label:32} {statistics.median(times) * 1000:10.1f} {p95 * 1000:8.1f}")
            report_times(tmp / "kanal.db", args.loads)
        finally:
            collector.stop()


def report_times(path: Path, loads: int) -> None:
    """The report functions alone, in this process on the same file: what a page costs
    beyond them is rendering, charts and HTTP."""
    database = Database(path)
    conn = database.conn()
    config = Config(db=path)
    try:
        for label, call in [("report function: overview", views.overview_view),
                            ("report function: attribution", views.attribution_view)]:
            times = []
            for _ in range(max(loads // 2, 3)):
                now = int(time.time() * 1000)
                started = time.perf_counter()
                call(conn, config, since_ms=now - 90 * DAY, until_ms=now)
                times.append(time.perf_counter() - started)
            times.sort()
            p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
            print(f"{label:32} {statistics.median(times) * 1000:10.1f} {p95 * 1000:8.1f}")
    finally:
        database.close()


if __name__ == "__main__":
    main()
