"""Scale benchmark: every dashboard page and `kanal report` command on a big database,
beside the same figures on a database 10× smaller, built and measured in the same run.

    python bench/bench_scale.py --events 100000    # baseline 10k (~3 min here)
    python bench/bench_scale.py --events 1000000   # baseline 100k (~5 min here)
    python bench/bench_scale.py                    # 10M, baseline 1M (~45 min here)
    python bench/bench_scale.py --events 25000000  # the 25M option
    python bench/bench_scale.py --people 1000000   # 10M events of 1M people (not 500k)

For each size a shop's log of n events (`shop_events`: n/20 people, or --people and a
tenth of them, over 85 days, who come in visits of about 6 events within minutes; orders
and sign-ups from the backend, log-ins that join a tenth of the people's anonymous
browsing to them, visits from campaigns, search, social and direct, product views, and
Kanal's own email deliveries, opens and clicks) is bulk-loaded through the storage
interface (executemany on SQLite, COPY on PostgreSQL); the derived tables (profiles,
daily counters, attribution credits, journey runs) are then built by Kanal's real
processor, whose rate is printed; the timers of the runs whose waits ended while the
database was built are fired and the journey days left marked are kept (what a server
running all along would have done as it went), and 20,000 more events are applied on
top, three rounds one after the other (the median round printed, every round's rate
below it), beside the same rounds each applied to an empty database of its own (and
20,000 events of 1,000 people, the baseline of earlier runs). A `kanal serve` process
is started on the database and left to work off what is left for it (the timers come
due since, keeping every past day's journey funnels, its first predictive fit; the
seconds it took are printed), after `kanal segments apply` has computed SEGMENTS (timed:
it tests every profile), which the server then keeps (its processor re-tests the people
of each batch, its sweeper every profile against the time-dependent ones; the empty
database's server has them too).
Then ingest on top is measured with batches of 100 events (POST /v1/batch) while the
processor drains them, three rounds of 50 back to back, the median round printed (beside
the same on the empty database), and once that is applied, sustained: three rounds of 200
batches (20,000 events, about a second each, while the processor applies batches beside
them); the server's resident memory is read from /proc after the pages are loaded.
Each dashboard page is loaded --loads times signed in; each `kanal report` command runs
--loads times as a fresh process (what a user waits for, Python start included; `kanal
report overview --help` is timed as that start-up). Bytes per stored event is the
database's size on disk over its events, whose bodies are stored as ingest stores them
(compact JSON without the keys the columns hold: store/events.py `event_row`). Never
fails on timing.

100M events is an estimate, not a run: at the bytes per event printed here it would need
about 100× the 1M database's disk, more than this machine has.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_dashboard import JOURNEY, sign_in  # noqa: E402
from bench_engines import prepare  # noqa: E402
from kanal_testing import start_collector  # noqa: E402

from kanal_collector.app import build_processor  # noqa: E402
from kanal_collector.clock import SystemClock, utc_iso  # noqa: E402
from kanal_collector.journeys import TimerWorker  # noqa: E402
from kanal_collector.memory import freeze_start_up  # noqa: E402
from kanal_collector.reports.kept_funnels import FunnelStep  # noqa: E402
from kanal_collector.store import keys as keystore  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.events import event_row  # noqa: E402

DAY = 86_400_000

PAGES = ["/dashboard/", "/dashboard/attribution", "/dashboard/journeys",
         "/dashboard/journeys/welcome", "/dashboard/experiments",
         "/dashboard/recommendations", "/dashboard/deliverability", "/dashboard/predict",
         "/dashboard/audiences", "/dashboard/costs", "/dashboard/people",
         "/dashboard/people?q=u1", "/dashboard/people/{busiest}", "/dashboard/events",
         "/dashboard/events/failed", "/dashboard/messages", "/dashboard/segments",
         "/dashboard/segments/product-fans",
         "/dashboard/settings", "/dashboard/journeys/welcome/flow",
         "/dashboard/journeys/files"]
"""Every dashboard page (a person's: the one with the longest timeline; a search: a
prefix a tenth of the userIds start with)."""
SEGMENTS = """\
segments:
  - name: product-fans
    description: Viewed products 3 times in a week
    all:
      - event: Product Viewed
        min: 3
        within: 7d
  - name: big-spenders
    all:
      - computed: revenue
        gt: 200
  - name: lapsed-buyers
    all:
      - computed: orders
        gte: 1
      - computed: last_order_at
        older_than: 30d
"""
"""The shop's segments: one on events in a window, two on computed values (one of them
time-dependent), each with members in `shop_events`' log."""
REPORTS = [["overview"], ["attribution"], ["journeys"], ["journey", "welcome"],
           ["experiments"], ["recommendations"], ["deliverability"], ["costs"]]


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p95 of `times`, in milliseconds."""
    times = sorted(times)
    return (times[len(times) // 2] * 1000,
            times[min(len(times) - 1, round(0.95 * (len(times) - 1)))] * 1000)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


INGEST_ROUNDS = 3
"""Rounds of ingest measured one after the other; the median round is printed (one
round's rate swung from 6,000 to 18,000 events/s on the same 10M database)."""

SUSTAINED_BATCHES = 200
"""Batches of 100 in a round of sustained ingest: 20,000 events of 20,000 people, about
a second, in which the processor applies batches beside it (a round of 50 batches is
over in 0.2 s, before much of that; on the 10M database rounds of 5,000 events measured
0.75× of an empty database's and rounds of 50,000 0.79–0.95×)."""

SUSTAINED = "ingest on top, sustained: rounds of 20,000 (events/s)"


def ingest(url: str, secret: str, batches: int, rounds: int = INGEST_ROUNDS,
           prefix: str = "ingest") -> float:
    """Events/s of `batches` POST /v1/batch requests of 100 events each, the median of
    `rounds` rounds sent back to back (new events each round; their messageIds begin
    with `prefix`), each of people u0, u1, … (one event each)."""
    now = int(time.time() * 1000)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    rates = []
    for n in range(rounds):
        started = time.perf_counter()
        for b in range(batches):
            batch = [{"type": "track", "event": "Product Viewed",
                      "userId": f"u{b * 100 + i}", "messageId": f"{prefix}-{n}-{b}-{i}",
                      "timestamp": utc_iso(now / 1000),
                      "properties": {"product_id": "p1", "price": 49.5}}
                     for i in range(100)]
            r = session.post(f"{url}/v1/batch", data=json.dumps({"batch": batch}),
                             timeout=60, headers={"Content-Type": "application/json"})
            r.raise_for_status()
        rates.append(batches * 100 / (time.perf_counter() - started))
    return sorted(rates)[len(rates) // 2]


CAMPAIGNS = [("newsletter", "email", "spring"), ("google", "cpc", "brand"),
             ("facebook", "paid_social", "retarget"), ("partner", "affiliate", "deals")]
REFERRERS = ["https://www.google.com/", "https://l.facebook.com/", "https://t.co/x",
             "https://blog.example.org/best-shoes", "https://duckduckgo.com/"]
EMAILS = ["Email Delivered", "Email Delivered", "Email Opened", "Email Link Clicked"]
SHOP = "https://shop.example.com"
COLUMNS = ("source_id", "message_id", "type", "event", "user_id", "anonymous_id", "origin",
           "key_kind", "verified", "timestamp", "received_at", "body")
ON_TOP = 20_000
"""Events appended to a built database to time the processor on top of it."""

ROUNDS = 3
"""Rounds of ON_TOP events the processor is timed on, the median round printed: one
round's rate on top of 10M events varied between 13,800 and 20,400 events/s from one
copy of a database to the next."""

_ROUND_MS = 3_600_000
"""Each round's events come an hour after the last round's (all a day or more ago)."""


VISITS_AT_ONCE = 100
"""Visits under way at any moment of a generated log (a shop of 10M events in 85 days
sees about 1.4 events a second: some 100 visits of 6 events within 10 minutes)."""
VISIT_EVENTS = 6
"""Mean events of a visit (geometric: many of 1 or 2, a few of 20 and more)."""


def shop_events(n: int, source: int, *, seed: int = 7, days: int = 85,
                prefix: str = "e", end: int | None = None, people: int | None = None,
                ) -> Iterator[tuple[Any, ...]]:
    """A shop's log of n events by n/20 people (or `people`) over `days` days, in time
    order: orders and sign-ups from the backend, page views (from campaigns, from search
    and social, and direct), product views, log-ins, and Kanal's own email events
    (deliveries, opens, clicks). A tenth of the people browse anonymously until they log
    in (a merge).

    People come in visits: a person's events follow each other within minutes, about
    VISIT_EVENTS of them, VISITS_AT_ONCE visits interleaved, each with one campaign and
    one referring site; each person makes about 20 / VISIT_EVENTS visits over the days.
    Kanal's own email events (5%) are of anyone, one at a time. The days end at `end`
    (ms since the epoch; now by default)."""
    rnd = random.Random(seed)
    people = max(n // 20, 1) if people is None else people
    end = int(time.time() * 1000) if end is None else end
    start = end - days * DAY
    step = max(days * DAY // n, 1)
    visits = [_Visit(0, 0, CAMPAIGNS[0], REFERRERS[0]) for _ in range(VISITS_AT_ONCE)]
    for i in range(n):
        ts = start + i * step
        roll = rnd.random()
        if 0.05 <= roll < 0.10:  # Kanal's own email events: not part of a visit
            k = rnd.randrange(people)
        else:
            slot = rnd.randrange(VISITS_AT_ONCE)
            visit = visits[slot]
            if visit.left == 0:  # finished: a new visit takes its place
                visit = visits[slot] = _Visit(rnd.randrange(people), _visit_length(rnd),
                                              rnd.choice(CAMPAIGNS), rnd.choice(REFERRERS))
            visit.left -= 1
            k = visit.person
        user, anon = f"u{k}", f"a{k}"
        web_ids: dict[str, str] = {"anonymousId": anon} if k % 10 == 0 else {"userId": user}
        body: dict[str, Any] = {"messageId": f"{prefix}{i}", "timestamp": utc_iso(ts / 1000),
                                "context": {}}
        origin, key_kind, kind, event = "web", "public", "page", None
        ids = web_ids
        if roll < 0.02:
            origin, key_kind, kind, event = "server", "secret", "track", "Order Completed"
            body["properties"] = {"order_id": f"{prefix}o{i}", "currency": "EUR",
                                  "revenue": round(rnd.uniform(15, 250), 2)}
            ids = {"userId": user}
        elif roll < 0.04:
            origin, key_kind, kind, event = "server", "secret", "track", "Signed Up"
            ids = {"userId": user}
        elif roll < 0.05:  # a log-in: joins the anonymous browsing to the customer
            kind, ids = "identify", {"userId": user, "anonymousId": anon}
        elif roll < 0.10:
            origin, key_kind, kind, event = "email", "kanal", "track", rnd.choice(EMAILS)
            week = (ts - start) // (7 * DAY)
            body["properties"] = {"channel": "email", "message": f"newsletter_w{week}",
                                  "outbox_id": i}
            ids = {"userId": user}
        elif roll < 0.30:
            src, medium, name = visit.campaign
            body["context"] = {"campaign": {"source": src, "medium": medium, "name": name},
                               "page": {"url": f"{SHOP}/?utm_source={src}"}}
        elif roll < 0.40:
            body["context"] = {"page": {"url": f"{SHOP}/", "referrer": visit.referrer}}
        elif roll < 0.65:
            kind, event = "track", "Product Viewed"
            body["properties"] = {"product_id": f"p{rnd.randrange(50)}", "price": 49.5}
        body.update(ids, type=kind)
        if event:
            body["event"] = event
        # Stored as ingest stores it: compact JSON without what the columns hold.
        yield event_row(source, body["messageId"], kind, event, ids.get("userId"),
                        ids.get("anonymousId"), origin, key_kind,
                        int(key_kind in ("secret", "kanal")), ts, ts, body, _dumps)


@dataclass
class _Visit:
    """A visit under way: whose, how many events it has left, where it came from."""

    person: int
    left: int
    campaign: tuple[str, str, str]
    referrer: str


def _visit_length(rnd: random.Random) -> int:
    """Events of a new visit: geometric, at least 1, VISIT_EVENTS on average."""
    length = 1
    while rnd.random() > 1 / VISIT_EVENTS:
        length += 1
    return length


def _dumps(body: dict[str, Any]) -> str:
    """JSON as ingest writes it (orjson: compact)."""
    return orjson.dumps(body).decode()


def bulk_load(conn: Any, rows: Iterator[tuple[Any, ...]]) -> float:
    """Write rows to the log in bulk (executemany on SQLite, COPY on PostgreSQL),
    10,000 a transaction; seconds taken."""
    started = time.perf_counter()
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == 10_000:
            with transaction(conn) as tx:
                tx.before_append()
                tx.bulk_insert("events", COLUMNS, chunk)
            chunk = []
    if chunk:
        with transaction(conn) as tx:
            tx.before_append()
            tx.bulk_insert("events", COLUMNS, chunk)
    return time.perf_counter() - started


def written_bytes() -> int:
    """Bytes this process has handed to write calls so far (/proc/self/io `wchar`): on
    SQLite the pages of the WAL and of its checkpoints."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def processor_on_top(db: Any, people: int, source: int,
                     ) -> tuple[float, float, float, list[float]]:
    """The processor applying ROUNDS rounds of ON_TOP new events (of the same people),
    one after the other: the median round's (events/s, KB written per event, seconds of
    it idle work; see `processor_round`), and every round's events/s in order."""
    rounds = [processor_round(db, people, source, r) for r in range(ROUNDS)]
    return (*_median(rounds), [r[0] for r in rounds])


def _median(rounds: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The median round (by events/s) of `processor_round`'s figures."""
    return sorted(rounds)[len(rounds) // 2]


def processor_round(db: Any, people: int, source: int, number: int,
                    ) -> tuple[float, float, float]:
    """Events/s of the processor applying ON_TOP new events (of the same people; round
    `number`: its own events, an hour after the last round's), the KB it wrote per event
    (each page a batch changes is written whole, to the WAL and again by the checkpoint:
    where the rows of the events share pages, a page is written for several), and the
    seconds of that time it spent on idle work (its turns without events: keeping the
    journey days the events changed, reports/kept_funnels.py, whose cost is per day
    marked, not per event; a busy processor keeps one a second)."""
    end = int(time.time() * 1000) - (ROUNDS - 1 - number) * _ROUND_MS
    rows = shop_events(people * 20, source, seed=99 + number, days=1,
                       prefix=f"top{number}.", end=end, people=people)
    bulk_load(db.conn(), itertools.islice(rows, ON_TOP))
    processor = build_processor(db)
    written = written_bytes()
    started = time.perf_counter()
    applied = idle = 0.0
    while True:  # what catch_up does, timing the turns without events apart
        turn = time.perf_counter()
        if not processor.run_once():
            break
        applied += processor.last_events
        if not processor.last_events:
            idle += time.perf_counter() - turn
    processor.settle()  # its last copy out of the WAL (store/checkpoints.py)
    spent = time.perf_counter() - started
    written = written_bytes() - written
    processor.close()
    return applied / spent, written / applied / 1024, idle


def _busy_rate(rate: float, idle: float) -> float:
    """Events/s of the turns that applied events: ON_TOP over the time less idle work."""
    return ON_TOP / max(ON_TOP / rate - idle, 1e-9)


_START_UP = 5.0
"""Seconds a server is given to begin its start-up work (its first predictive fit)."""


def settled(path: Path, timeout: float = 900.0) -> float:
    """Seconds until the server has applied every event, fired the timers that came due
    while the database was built and kept every past day's funnels (no journey day before
    today marked; firing a timer marks its run's day, and a report counts marked days
    from the runs) and finished its first predictive fit: what a server running all
    along would have done as they came."""
    started = time.perf_counter()
    db = Database(str(path))
    try:
        while time.perf_counter() - started < timeout:
            now = int(time.time() * 1000)
            conn = db.conn()
            due = conn.execute("SELECT COUNT(*) FROM journey_timers WHERE due_at <= ?",
                               (now,)).fetchone()[0]
            marked = conn.execute("SELECT COUNT(*) FROM journey_marks WHERE day < ?",
                                  (now // DAY,)).fetchone()[0]
            behind = conn.execute(
                "SELECT (SELECT MAX(id) FROM events) > "
                "COALESCE((SELECT position FROM cursors WHERE name = 'processor'), 0)"
            ).fetchone()[0]
            # A server's first start fits the predictions (predict/schedule.py), in a
            # process of its own: what a server running all along did long ago.
            fitting = conn.execute("SELECT COUNT(*) FROM predict_fits "
                                   "WHERE status = 'running'").fetchone()[0]
            begun = time.perf_counter() - started >= _START_UP
            if begun and not due and not marked and not behind and not fitting:
                break
            time.sleep(1.0)
        return time.perf_counter() - started
    finally:
        db.close()


def measure_empty(tmp: Path, sizes: Iterable[tuple[int, int]],
                  ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The processor and ingest on an empty database: the baselines of the rates on
    top. The processor applies the same 20,000 events as on top of each size (the same
    people: (n, people) of `sizes`, most with one event among the 20,000), and, as
    before, 20,000 events of 1,000 people (20 each: a batch touches fewer profiles, so it
    runs faster), each of the ROUNDS rounds on an empty database of its own (the median round's
    figures; every round's events/s by label beside them); ingest with the server the
    same as on the big ones (its funnels kept first)."""
    out: dict[str, float] = {}
    rounds: dict[str, list[float]] = {}
    for i, (n, people) in enumerate([(ON_TOP, ON_TOP // 20), *sizes]):
        label = ("processor on top, 20k events of 1,000 people (events/s)" if i == 0
                 else f"processor, the 20k events on top of {n:,} (events/s)")
        runs = []
        for number in range(ROUNDS):
            path = tmp / f"empty-{i}-{number}.db"
            db, source = prepare(str(path), tmp / "journeys")
            try:
                runs.append(processor_round(db, people, source, number))
                secret = keystore.create_key(db.conn(), "secret", int(time.time() * 1000))
            finally:
                db.close()
        out[label], out[label.replace("(events/s)", "(KB written per event)")], \
            out[label.replace("(events/s)", "(s of it idle work)")] = _median(runs)
        rounds[label] = [r[0] for r in runs]
    apply_segments(path)
    collector = start_collector(path, env={"KANAL_JOURNEYS_DIR": str(tmp / "journeys")})
    try:
        settled(path)
        out["ingest on top, batches of 100 (events/s)"] = ingest(collector.url, secret, 50)
        settled(path)
        out[SUSTAINED] = ingest(collector.url, secret, SUSTAINED_BATCHES, prefix="sustained")
    finally:
        collector.stop()
    return out, rounds


def apply_segments(path: Path) -> float:
    """`kanal segments apply` SEGMENTS on the database at `path`, as a user runs it (a
    process of its own); seconds taken."""
    file = path.parent / "segments.yaml"
    file.write_text(SEGMENTS, encoding="utf-8")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kanal_collector", "segments", "apply", str(file),
                    "--db", str(path)], check=True, capture_output=True)
    return time.perf_counter() - started


def fire_due_timers(db: Any) -> tuple[int, float]:
    """Fire every timer that came due while the database was built (how many, seconds
    taken): the runs whose waits ended move on, as on a server running all along. Else
    the events on top meet tens of thousands of runs still waiting weeks after their
    waits ended, whose journey days they mark (an order ends such a run), which no
    running shop has."""
    started = time.perf_counter()
    timers = TimerWorker(db, SystemClock())
    fired = 0
    try:
        while batch := timers.fire_due():
            fired += batch
    finally:
        timers.close()
    return fired, time.perf_counter() - started


def keep_funnel_days(db: Any) -> float:
    """Keep every marked journey day now (seconds taken): what a server running all
    along does within seconds of a day's last change. The build's processor leaves the
    days it kept less than 30 s before its end marked (reports/kept_funnels.py), and the
    processor on top would otherwise pay for them."""
    started = time.perf_counter()
    with transaction(db.conn()) as conn:
        FunnelStep(settle=0).keep(conn)
    return time.perf_counter() - started


def measure_size(tmp: Path, n: int, people: int, loads: int,
                 rounds: dict[str, list[float]]) -> dict[str, float]:
    """Build a database of n events by `people` people and measure it; figures by label
    (the processor's rounds on top by label into `rounds`)."""
    out: dict[str, float] = {}
    journeys = tmp / "journeys"
    path = tmp / f"scale-{n}.db"
    db, source = prepare(str(path), journeys)
    conn = db.conn()
    out["bulk load (events/s)"] = n / bulk_load(conn, shop_events(n, source, people=people))
    processor = build_processor(db)
    started = time.perf_counter()
    applied = processor.catch_up()
    out["processor, from empty (events/s)"] = applied / (time.perf_counter() - started)
    processor.close()
    out["bytes per stored event"] = sum(
        p.stat().st_size for p in tmp.glob(f"scale-{n}.db*")) / n
    out["profiles"] = conn.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]
    out["timers that came due during the build, fired"], \
        out["firing the timers that came due during the build (s)"] = fire_due_timers(db)
    out["keeping the build's last funnel days (s)"] = keep_funnel_days(db)
    label = "processor on top, 20k events (events/s)"
    out[label], out["processor on top, KB written per event"], \
        out["processor on top, s of it idle work"], \
        rounds[f"processor on top of {n:,} (events/s)"] = \
        processor_on_top(db, people, source)
    busiest = conn.execute("SELECT profile_id FROM profile_events GROUP BY profile_id "
                           "ORDER BY count(*) DESC, profile_id LIMIT 1").fetchone()[0]
    now = int(time.time() * 1000)
    admin = keystore.create_key(conn, "admin", now)
    secret = keystore.create_key(conn, "secret", now)
    db.close()
    out["kanal segments apply: 3 new segments (s)"] = apply_segments(path)
    collector = start_collector(path, env={"KANAL_JOURNEYS_DIR": str(journeys)})
    try:
        # First the start-up's backlog (a built database's due timers, its funnel days),
        # which a server running all along would have worked off as it went.
        out["serve: seconds to work off the start-up backlog"] = settled(path)
        out["ingest on top, batches of 100 (events/s)"] = ingest(collector.url, secret, 50)
        # The pages of a server that has applied what it took in (while the processor
        # works, its Python shares the one interpreter lock with the pages').
        out["serve: seconds to apply the ingested events"] = settled(path)
        out[SUSTAINED] = ingest(collector.url, secret, SUSTAINED_BATCHES, prefix="sustained")
        out["serve: seconds to apply the sustained rounds"] = settled(path)
        signed_in = sign_in(collector.url, admin)
        for page in PAGES:
            url = collector.url + page.format(busiest=busiest)
            url += ("&" if "?" in url else "?") + "since=90d"
            signed_in.get(url, timeout=600).raise_for_status()
            times = []
            for _ in range(loads):
                started = time.perf_counter()
                signed_in.get(url, timeout=600).raise_for_status()
                times.append(time.perf_counter() - started)
            p50, p95 = percentiles(times)
            out[f"page {page} p50 ms"], out[f"page {page} p95 ms"] = p50, p95
        out["kanal serve resident (MB)"] = rss_mb(collector.process.pid)
    finally:
        collector.stop()
    cmd = [sys.executable, "-m", "kanal_collector", "report"]
    env = {**os.environ, "KANAL_JOURNEYS_DIR": str(journeys)}
    times = []
    for _ in range(loads):  # what every command pays before it reads anything
        started = time.perf_counter()
        subprocess.run([*cmd, "overview", "--help"], env=env, check=True,
                       capture_output=True)
        times.append(time.perf_counter() - started)
    out["kanal report overview --help (start-up) p50 ms"] = percentiles(times)[0]
    for report in REPORTS:
        since = [] if report == ["costs"] else ["--since", "90d"]
        times = []
        for _ in range(loads):
            started = time.perf_counter()
            subprocess.run([*cmd, *report, "--db", str(path), *since], env=env,
                           check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        p50, p95 = percentiles(times)
        label = " ".join(report)
        out[f"kanal report {label} p50 ms"], out[f"kanal report {label} p95 ms"] = p50, p95
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure at --events and at a tenth of it; print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=None,
                        help="people of the --events log (default: one per 20 events); "
                             "the smaller log has a tenth of them")
    parser.add_argument("--loads", type=int, default=5, help="loads of each page/report")
    args = parser.parse_args(argv)
    small, big = args.events // 10, args.events
    if args.people is not None and args.people < 10:
        parser.error(f"--people must be at least 10, not {args.people}")
    people = {big: args.people or max(big // 20, 1)}
    people[small] = max(people[big] // 10, 1)
    # The processor's rounds run in this process: with what it imported out of the
    # garbage collector's walks, as `kanal serve` has once started (memory.py).
    freeze_start_up()
    with tempfile.TemporaryDirectory(prefix="kanal-scale-") as name:
        tmp = Path(name)
        (tmp / "journeys").mkdir()
        (tmp / "journeys" / "welcome.yaml").write_text(textwrap.dedent(JOURNEY),
                                                        encoding="utf-8")
        print(f"Kanal at scale: {big:,} events of {people[big]:,} people beside {small:,} "
              f"of {people[small]:,} (SQLite, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.2f}, {args.loads} loads each)", flush=True)
        figures = {}
        empty, rounds = measure_empty(tmp, [(n, people[n]) for n in (small, big)])
        for n in (small, big):
            started = time.perf_counter()
            figures[n] = measure_size(tmp, n, people[n], args.loads, rounds)
            print(f"  measured {n:,} events in {time.perf_counter() - started:.0f} s",
                  flush=True)
        for label, value in empty.items():
            print(f"  on an empty database: {label} {value:.1f}")
        for label, rates in rounds.items():
            print(f"  rounds of the {label}: " + ", ".join(f"{r:,.0f}" for r in rates))
        print(f"\n{'figure':58} {small:>12,} {big:>12,}  growth")
        for label, value in figures[small].items():
            grown = figures[big][label] / value if value else float("nan")
            print(f"{label:58} {value:12.1f} {figures[big][label]:12.1f}  {grown:5.1f}×")
        print()
        # The goal: at least 0.8× the empty database.
        on_top = "processor on top, 20k events (events/s)"
        for n in (small, big):
            label = f"processor, the 20k events on top of {n:,} (events/s)"
            same = empty[label]
            busy = _busy_rate(figures[n][on_top], figures[n]["processor on top, s of it "
                                                              "idle work"])
            busy_same = _busy_rate(same, empty[label.replace("(events/s)",
                                                             "(s of it idle work)")])
            print(f"processor on top of {n:,}: {figures[n][on_top] / same:.2f}× the same "
                  f"events on an empty database ({same:,.0f} events/s); its turns with "
                  f"events alone {busy / busy_same:.2f}× ({busy:,.0f} / {busy_same:,.0f} "
                  "events/s)")
        few = empty["processor on top, 20k events of 1,000 people (events/s)"]
        print(f"processor on top: {figures[small][on_top] / few:.2f}× / "
              f"{figures[big][on_top] / few:.2f}× 20k events of 1,000 people on an empty "
              f"database ({few:,.0f} events/s)")
        for label in ("ingest on top, batches of 100 (events/s)", SUSTAINED):
            print(f"{label}: {figures[small][label] / empty[label]:.2f}× / "
                  f"{figures[big][label] / empty[label]:.2f}× the empty database's "
                  f"{empty[label]:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
