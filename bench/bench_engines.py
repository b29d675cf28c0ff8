"""PostgreSQL beside SQLite: ingest, the processor and reports, in the same run.

1. HTTP ingest (`kanal serve`, wrk on loopback as in bench_ingest.py): single events
   (POST /v1/track) in requests/s and batches of 100 (POST /v1/batch) in events/s, on
   SQLite and on PostgreSQL, interleaved; beside them PostgreSQL's own multi-row INSERT
   (100 rows a statement, a commit each: a batch's shape) and COPY of the same rows,
   straight from psycopg, and raw SQLite executemany.
2. The log at 1×, 10× and 100× (10k, 100k, 1M events by default): loading it (COPY into
   PostgreSQL, executemany into SQLite: the baselines), the processor over it (all
   steps: stats, profiles, segments, journeys with one journey) in events/s, and the
   reports (overview, attribution, journeys, experiments) in seconds, on both engines.

PostgreSQL is a throwaway cluster started for the run (tests/pg.sh) with durability on
(fsync, synchronous_commit), or the server given by --postgres (a URL whose user may
create databases). SQLite runs with synchronous=FULL, as Kanal does by default. Never
fails on timing; prints what it ran and how each cost grows with the work.

    python bench/bench_engines.py                       # 10k, 100k, 1M (~25 min here)
    python bench/bench_engines.py --sizes 10000,100000  # ~5 min
    python bench/bench_engines.py --no-http             # without wrk
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_ingest as http  # noqa: E402
from bench_dashboard import JOURNEY  # noqa: E402

from kanal_collector.app import build_processor  # noqa: E402
from kanal_collector.clock import utc_iso  # noqa: E402
from kanal_collector.config import Config  # noqa: E402
from kanal_collector.journeys.timers import sync  # noqa: E402
from kanal_collector.reports import views  # noqa: E402
from kanal_collector.store import keys as keystore  # noqa: E402
from kanal_collector.store.connection import Connection  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.events import EventRow, event_row  # noqa: E402
from kanal_collector.store.schema import migrate  # noqa: E402

COLUMNS = ("source_id", "message_id", "type", "event", "user_id", "anonymous_id", "origin",
           "key_kind", "verified", "timestamp", "received_at", "body")
DAY = 86_400_000
CAMPAIGNS = [("newsletter", "email", "spring"), ("google", "cpc", "brand"),
             ("facebook", "paid_social", "retarget")]


def events(n: int, source: int, seed: int = 7) -> Iterator[EventRow]:
    """A shop's log: page views (some from campaigns), product views, sign-ups and
    orders, by n/20 people over 85 days, in time order."""
    rnd = random.Random(seed)
    people = max(n // 20, 1)
    start = int(time.time() * 1000) - 85 * DAY
    step = 85 * DAY // n
    for i in range(n):
        ts = start + i * step
        user = f"u{rnd.randrange(people)}"
        iso = utc_iso(ts / 1000)
        body: dict[str, Any] = {"messageId": f"e{i}", "userId": user, "timestamp": iso,
                                "context": {}}
        roll = rnd.random()
        origin, key_kind, kind, event = "web", "public", "page", None
        if roll < 0.02:
            origin, key_kind, kind, event = "server", "secret", "track", "Order Completed"
            body["properties"] = {"order_id": f"o{i}", "currency": "EUR",
                                  "revenue": round(rnd.uniform(15, 250), 2)}
        elif roll < 0.04:
            origin, key_kind, kind, event = "server", "secret", "track", "Signed Up"
        elif roll < 0.3:
            src, medium, name = rnd.choice(CAMPAIGNS)
            body["context"] = {"campaign": {"source": src, "medium": medium, "name": name}}
        elif roll < 0.6:
            kind, event = "track", "Product Viewed"
            body["properties"] = {"product_id": f"p{rnd.randrange(50)}", "price": 49.5}
        body["type"] = kind
        if event:
            body["event"] = event
        yield event_row(source, body["messageId"], kind, event, user, None, origin, key_kind,
                        int(key_kind == "secret"), ts, ts, body, json.dumps)


def chunks(rows: Iterator[EventRow], size: int) -> Iterator[list[EventRow]]:
    """Lists of `size` rows."""
    chunk: list[EventRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepare(target: str, journeys: Path) -> tuple[Database, int]:
    """A migrated database with the default source and the journey loaded."""
    db = Database(target)
    conn = db.conn()
    migrate(conn)
    keystore.bootstrap(conn, 0)
    with transaction(conn):
        sync(conn, journeys, int(time.time() * 1000) - 86 * DAY)
    return db, keystore.source_id(conn, "default") or 1


def load(conn: Connection, n: int, source: int) -> float:
    """Bulk-load n events (COPY on PostgreSQL, executemany on SQLite); seconds taken."""
    started = time.perf_counter()
    for chunk in chunks(events(n, source), 10_000):
        with transaction(conn) as tx:
            tx.before_append()
            tx.bulk_insert("events", COLUMNS, chunk)
    return time.perf_counter() - started


def multirow_insert(url: str, n: int, source: int) -> float:
    """PostgreSQL's own multi-row INSERT of n events, 100 rows a statement and a commit
    each (the shape of one ingest batch), straight from psycopg; seconds taken."""
    marks = "(" + ",".join(["%s"] * len(COLUMNS)) + ")"
    sql = (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
           + ",".join([marks] * 100) + " ON CONFLICT (source_id, message_id) DO NOTHING")
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for chunk in chunks(events(n, source, seed=99), 100):
            values = [v for row in chunk for v in row]
            text = sql if len(chunk) == 100 else (
                sql.replace(",".join([marks] * 100), ",".join([marks] * len(chunk))))
            with conn.transaction():
                conn.execute(text, values)  # type: ignore[arg-type]
    return time.perf_counter() - started


def timed(func: Callable[[], Any], repeat: int) -> float:
    """The median seconds of `repeat` calls."""
    spent = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        spent.append(time.perf_counter() - started)
    return sorted(spent)[len(spent) // 2]


def reports(conn: Connection, config: Config, repeat: int) -> dict[str, float]:
    """Seconds each report takes over the last 90 days."""
    now = int(time.time() * 1000) + DAY
    window = {"since_ms": now - 90 * DAY, "until_ms": now}
    return {
        "overview": timed(lambda: views.overview_view(conn, config, **window), repeat),
        "attribution": timed(lambda: views.attribution_view(conn, config, **window), repeat),
        "journeys": timed(lambda: views.journeys_view(conn, **window), repeat),
        "experiments": timed(lambda: views.experiments_view(conn, **window), repeat),
    }


def throwaway_server(stack: ExitStack) -> str:
    """A PostgreSQL cluster for the run, durability on (tests/pg.sh), stopped and deleted
    when `stack` closes; its URL."""
    script = str(HERE.parent / "tests" / "pg.sh")
    pgdir = tempfile.mkdtemp(prefix="kanal-bench-pg-")
    env = {**os.environ, "KANAL_PG_DURABLE": "1"}
    out = subprocess.run(["bash", script, "start", pgdir], capture_output=True, text=True,
                         env=env, check=True)
    stack.callback(subprocess.run, ["bash", script, "stop", pgdir], check=False)
    return out.stdout.strip().splitlines()[-1]


def admin(server: str, sql: str) -> None:
    """Run one statement on the server's maintenance database."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def database(server: str, name: str) -> str:
    """A fresh, empty database on the server; its URL."""
    admin(server, f"DROP DATABASE IF EXISTS {name}")
    admin(server, f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + "/" + name


def growth(values: list[float], sizes: list[int]) -> str:
    """How a cost grew from the smallest size: ×factor per ×size."""
    if len(values) < 2 or not values[0]:
        return ""
    return ", ".join(f"{s // sizes[0]}× work: {v / values[0]:.1f}× time"
                     for s, v in zip(sizes[1:], values[1:], strict=True))


def log_part(server: str, tmp: Path, sizes: list[int], repeat: int) -> None:
    """Part 2: loading, processing and reporting at each size, both engines."""
    journeys = tmp / "journeys"
    journeys.mkdir(exist_ok=True)
    (journeys / "welcome.yaml").write_text(textwrap.dedent(JOURNEY), encoding="utf-8")
    figures: dict[str, dict[str, list[float]]] = {}
    for n in sizes:
        print(f"2. the log at {n:,} events", flush=True)
        targets = {"SQLite": str(tmp / f"log-{n}.db"),
                   "PostgreSQL": database(server, f"bench_log_{n}")}
        baseline = database(server, f"bench_insert_{n}")
        base_db, base_source = prepare(baseline, journeys)
        base_db.close()
        insert_s = multirow_insert(baseline, n, base_source)
        admin(server, f"DROP DATABASE bench_insert_{n}")
        for engine, target in targets.items():
            db, source = prepare(target, journeys)
            conn = db.conn()
            load_s = load(conn, n, source)
            processor = build_processor(db)
            started = time.perf_counter()
            applied = processor.catch_up()
            process_s = time.perf_counter() - started
            processor.close()
            took = reports(conn, Config(db=target), repeat if n < 1_000_000 else 1)
            db.close()
            row = figures.setdefault(engine, {})
            row.setdefault("load", []).append(n / load_s)
            row.setdefault("processor", []).append(applied / process_s)
            for name, seconds in took.items():
                row.setdefault(name, []).append(seconds)
            print(f"   {engine:<10} load {n / load_s:>9,.0f} events/s "
                  f"({'COPY' if engine == 'PostgreSQL' else 'executemany'})   processor "
                  f"{applied / process_s:>7,.0f} events/s   reports: "
                  + ", ".join(f"{k} {v:.3f} s" for k, v in took.items()), flush=True)
        figures.setdefault("PostgreSQL INSERT", {}).setdefault("load", []).append(
            n / insert_s)
        print(f"   {'PostgreSQL':<10} multi-row INSERT, 100 a statement and a commit: "
              f"{n / insert_s:>9,.0f} events/s", flush=True)
        admin(server, f"DROP DATABASE bench_log_{n}")
    if len(sizes) > 1:
        print("\n   growth (time per event is flat when time grows as the work does)")
        for engine in ("SQLite", "PostgreSQL"):
            row = figures[engine]
            print(f"   {engine:<10} processor: "
                  + growth([n / r for n, r in zip(sizes, row["processor"], strict=True)],
                           sizes))
            for name in ("overview", "attribution", "journeys", "experiments"):
                print(f"   {engine:<10} {name}: {growth(row[name], sizes)}")


def http_part(server: str, tmp: Path, seconds: float, rounds: int, threads: int) -> None:
    """Part 1: HTTP ingest on both engines, and PostgreSQL's own appends."""
    with ExitStack() as stack:
        kanal_sqlite = http.start_kanal(tmp / "http-sqlite", threads, "FULL")
        stack.callback(http.stop, kanal_sqlite)
        kanal_pg = http.start_kanal(tmp / "http-pg", threads, "FULL",
                                    db=database(server, "bench_http"))
        stack.callback(http.stop, kanal_pg)
        servers = {"SQLite": kanal_sqlite, "PostgreSQL": kanal_pg}
        for s in servers.values():
            http.wait_ready(s)
            http.wrk(s, mode="track", seconds=1, threads=2, connections=16)
            http.wait_drained(s)
        print("1. ingest over HTTP (wrk -t2 -c16 single, -t1 -c8 batches of 100)")
        for mode, unit in (("track", "req/s"), ("batch", "events/s")):
            runs: dict[str, list[Any]] = {name: [] for name in servers}
            for i in range(rounds):
                order = list(servers.items()) if i % 2 == 0 else list(servers.items())[::-1]
                for name, s in order:
                    if mode == "track":
                        run = http.wrk(s, mode="track", seconds=seconds, threads=2,
                                       connections=16)
                    else:
                        run = http.wrk(s, mode="batch", seconds=seconds, threads=1,
                                       connections=8)
                    runs[name].append(run)
                    http.wait_drained(s)
            scale = 1 if mode == "track" else http.BATCH_SIZE
            rates = {n: http.total_rate(r) * scale for n, r in runs.items()}
            p99 = {n: max(x.p99_ms for x in r) for n, r in runs.items()}
            print(f"   {'single' if mode == 'track' else 'batch':<7} "
                  + "   ".join(f"{n} {rates[n]:>9,.0f} {unit} (p99 {p99[n]:.1f} ms)"
                             for n in servers)
                  + f"   PostgreSQL/SQLite {rates['PostgreSQL'] / rates['SQLite']:.2f}",
                  flush=True)
        stored = http.count_events(kanal_pg.db or "")
        print(f"   (PostgreSQL's Kanal stored {stored:,} events)")
    admin(server, "DROP DATABASE bench_http")
    n = 50_000
    url = database(server, "bench_append")
    db, source = prepare(url, tmp)
    copy_s = load(db.conn(), n, source)
    db.close()
    admin(server, "DROP DATABASE bench_append")
    url = database(server, "bench_append")
    db, source = prepare(url, tmp)
    db.close()
    insert_s = multirow_insert(url, n, source)
    admin(server, "DROP DATABASE bench_append")
    print(f"   PostgreSQL's own appends of {n:,} such events: COPY {n / copy_s:,.0f} "
          f"events/s, multi-row INSERT of 100 with a commit each {n / insert_s:,.0f} "
          "events/s\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="a server URL (default: a throwaway cluster)")
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="log sizes, comma-separated (default 10000,100000,1000000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of a wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of wrk")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each report")
    parser.add_argument("--no-http", action="store_true", help="skip part 1 (needs wrk)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kanal-engines-")))
        server = args.postgres or throwaway_server(stack)
        with psycopg.connect(server) as conn:
            pg_version = conn.info.server_version
            settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                        for name in ("fsync", "synchronous_commit", "shared_buffers")}
        print("Kanal on PostgreSQL beside SQLite")
        print(f"  machine: {os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python "
              f"{platform.python_version()}, SQLite {http.sqlite3.sqlite_version}, "
              f"PostgreSQL {pg_version // 10000}.{pg_version % 10000} "
              f"({', '.join(f'{k}={v}' for k, v in settings.items())}), "
              f"psycopg {psycopg.__version__}")
        print(f"  SQLite synchronous=FULL (WAL); sizes {', '.join(f'{s:,}' for s in sizes)}\n",
              flush=True)
        if not args.no_http:
            if shutil.which("wrk") is None:
                print("1. skipped: wrk is not installed (apt-get install wrk)\n")
            else:
                http_part(server, tmp, args.seconds, args.rounds, Config().threads)
        log_part(server, tmp, sizes, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
