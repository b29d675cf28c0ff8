"""Predictive scores benchmark: a fit's stages at 10k, 100k and 1M customers, beside the
time to read the same orders from the database (same run, same file), and ingest
latency while a fit runs beside ingest latency without one.

    python bench/bench_predict.py                         # 10k, 100k and 1M customers
    python bench/bench_predict.py --customers 10000 100000
    python bench/bench_predict.py --ingest 100000         # + ingest latency during a fit
    python bench/bench_predict.py --customers 10000 100000 --postgres postgresql://…/postgres

Customers are drawn from BG/NBD (r 0.6, α 40 days, a 0.9, b 4) and Gamma-Gamma over two
years; their profiles (with every order in the state, as the processor keeps them) are
written straight into a fresh database (a bulk load), plus as many visitors without
orders. Then:

    baseline: read    SELECT the states that hold orders (the fit's first query), rows only
    read + decode     predict.fit.read_customers: the same rows, JSON decoded, orders by day
    fit               summarise, fit BG/NBD and Gamma-Gamma (scipy), RFM edges
    score             every customer's scores (arrays)
    calibrate         a second fit on the training period, and the holdout comparison
    publish           make the rows and write them, chunk by chunk (a first fit: no events)
    run_fit           all of it, as `kanal predict fit` runs it

With --ingest N a `kanal serve` process runs on an N-customer database (ingest's rate
limit off: the loop sends as fast as it gets answers); single-event ingest latency is
measured for a while without a fit and then while `kanal predict fit` runs in a second
process, and the server's resident memory is read before and after.

With --postgres URL (a server whose user may create databases, e.g. the URL `bash
tests/pg.sh start DIR` prints) everything runs on PostgreSQL too, after SQLite, each size
in a database of its own (`run_fit` on a copy made with CREATE DATABASE … TEMPLATE).
Never fails on timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_engines import admin, database  # noqa: E402

from kanal_collector.clock import FakeClock  # noqa: E402
from kanal_collector.predict import bgnbd  # noqa: E402
from kanal_collector.predict.calibration import calibrate  # noqa: E402
from kanal_collector.predict.data import DAY_MS, summarize  # noqa: E402
from kanal_collector.predict.fit import read_customers, run_fit  # noqa: E402
from kanal_collector.predict.publish import publish  # noqa: E402
from kanal_collector.predict.scores import Thresholds, fit_models, score  # noqa: E402
from kanal_collector.predict.settings import PredictSettings  # noqa: E402
from kanal_collector.store import keys as keystore  # noqa: E402
from kanal_collector.store import predict as store  # noqa: E402
from kanal_collector.store.connection import Connection  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.profiles import widen_cache  # noqa: E402
from kanal_collector.store.schema import migrate  # noqa: E402

PLANTED = bgnbd.BGNBD(0.6, 40.0, 0.9, 4.0)
PROFILE_COLUMNS = ("created_at", "first_seen", "last_seen", "state")


class Target:
    """Where one size's databases live: SQLite files in a directory, or databases on a
    PostgreSQL server."""

    def __init__(self, tmp: Path, server: str | None = None) -> None:
        self.tmp, self.server = tmp, server
        self.engine = "postgresql" if server else "sqlite"

    def fresh(self, name: str) -> str:
        """A new, empty database; its path or URL."""
        if self.server:
            return database(self.server, f"kanal_bench_predict_{name}")
        return str(self.tmp / f"{name}.db")

    def copy(self, source: str, name: str) -> str:
        """A copy of `source` (closed); its path or URL."""
        if self.server:
            target = f"kanal_bench_predict_{name}"
            admin(self.server, f"DROP DATABASE IF EXISTS {target}")
            admin(self.server, f"CREATE DATABASE {target} TEMPLATE {source.rsplit('/', 1)[1]}")
            return self.server.rsplit("/", 1)[0] + "/" + target
        target = str(self.tmp / f"{name}.db")
        shutil.copy(source, target)
        return target

    def drop(self, target: str) -> None:
        """Delete a database this made."""
        if self.server:
            admin(self.server, f"DROP DATABASE IF EXISTS {target.rsplit('/', 1)[1]}")
            return
        for suffix in ("", "-wal", "-shm"):
            Path(target + suffix).unlink(missing_ok=True)


def build(path: str, customers: int, seed: int = 7) -> int:
    """Write `customers` buyers and as many visitors; returns the fit's "now" (ms)."""
    rng = np.random.default_rng(seed)
    now = 1_790_000_000_000
    start = now - 730 * DAY_MS
    first = rng.uniform(start, now, customers)
    x, t_x, _ = bgnbd.simulate(PLANTED, (now - first) / DAY_MS, rng)
    nu = rng.gamma(5.0, 1 / 40.0, customers)
    db = Database(path, synchronous="OFF")
    conn = db.conn()
    migrate(conn)
    rows = []
    for i in range(customers):
        n = int(x[i])
        # Given n purchases with the last at t_x, the earlier ones are uniform before it.
        times = [0.0, *sorted(rng.uniform(0, t_x[i], max(n - 1, 0))), t_x[i]][: n + 1]
        values = rng.gamma(3.0, 1 / nu[i], n + 1)
        ts = [int(first[i] + t * DAY_MS) for t in times]
        state = {"first": ts[0], "last": ts[-1], "origins": {"server": n + 1},
                 "orders": {f"o:{i}-{k}": [round(float(values[k]), 2), ts[k]]
                            for k in range(n + 1)},
                 "t": {"email": [f"c{i}@example.com", ts[0], 1]}}
        rows.append((ts[0], ts[0], ts[-1], json.dumps(state, separators=(",", ":"),
                                                      sort_keys=True)))
        rows.append((ts[0], ts[0], ts[0], json.dumps(
            {"first": ts[0], "last": ts[0], "origins": {"web": 3}},
            separators=(",", ":"), sort_keys=True)))
        if len(rows) >= 50_000:
            _write(conn, rows)
            rows = []
    _write(conn, rows)
    with transaction(conn):
        conn.execute("INSERT INTO track_daily (day, event, count, revenue) "
                     "VALUES (?, 'Order Completed', ?, 0)",
                     (now // DAY_MS, int(x.sum() + customers)))
    keystore.create_source(conn, "default", now)
    db.close()
    return now


def _write(conn: Connection, rows: list[tuple[int, int, int, str]]) -> None:
    with transaction(conn):
        conn.bulk_insert("profiles", PROFILE_COLUMNS, rows)


def timed(what: dict[str, float], name: str, fn: object) -> object:
    started = time.perf_counter()
    out = fn()  # type: ignore[operator]
    what[name] = time.perf_counter() - started
    return out


def stages(target: Target, path: str, n: int, now: int) -> dict[str, float]:
    """Each stage of a fit timed on its own, then run_fit whole (on a copy)."""
    t: dict[str, float] = {}
    copy = target.copy(path, f"copy_{n}")
    db = Database(path)
    conn = db.conn()
    widen_cache(conn)
    # Warm the caches once so every reader starts equal.
    conn.execute("SELECT count(*), sum(length(state)) FROM profiles").fetchone()
    timed(t, "baseline: read", lambda: conn.execute(
        "SELECT id, state FROM profiles WHERE state LIKE ?", ('%"orders"%',)).fetchall())
    customers = timed(t, "read + decode", lambda: read_customers(conn))
    thresholds = Thresholds()
    summary = summarize(customers, now // DAY_MS)  # type: ignore[arg-type]
    models = timed(t, "fit", lambda: fit_models(summary, thresholds))
    table = timed(t, "score", lambda: score(summary, models))  # type: ignore[arg-type]
    timed(t, "calibrate", lambda: calibrate(customers, now // DAY_MS, 90,  # type: ignore[arg-type]
                                            thresholds))
    with transaction(conn):
        fit_id = store.create_fit(conn, model_version="bench", started_at=now, as_of=now)
    timed(t, "publish", lambda: publish(conn, fit_id, table, now_ms=now,  # type: ignore[arg-type]
                                        stage_events=False, risk_events=False))
    db.close()
    db = Database(copy)
    timed(t, "run_fit", lambda: run_fit(db, PredictSettings(), FakeClock(now / 1000)))
    db.close()
    target.drop(copy)
    return t


def ingest_during_fit(tmp: Path, path: str, seconds: float = 20.0) -> None:
    """Latency of single-event ingest without and with a fit running alongside."""
    config = tmp / "k.toml"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KANAL_CONFIG": str(config)}
    # No refit of the server's own (the fit is started by hand below), and no rate
    # limit: one client sending as fast as it is answered is over the default 200/s.
    config.write_text("[predict]\nenabled = false\n\n[ingest]\nrate_limit = 0\n",
                      encoding="utf-8")
    conn_keys = subprocess.run(
        [sys.executable, "-m", "kanal_collector", "keys", "create", "--kind", "secret",
         "--db", path], env=env, capture_output=True, text=True, check=True)
    key = conn_keys.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [sys.executable, "-m", "kanal_collector", "serve", "--port", "0", "--db", path],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    url = ""
    for line in server.stdout:
        if m := re.search(r"listening on (http://\S+)", line):
            url = m.group(1)
            break
    session = requests.Session()

    def rss() -> int:
        text = Path(f"/proc/{server.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]

    def measure(until: object) -> list[float]:
        out = []
        while not until():  # type: ignore[operator]
            started = time.perf_counter()
            r = session.post(f"{url}/v1/track", auth=(key, ""),
                             json={"userId": "bench", "event": "Product Viewed"}, timeout=30)
            out.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200
        return out

    try:
        warm_until = time.monotonic() + 2
        measure(lambda: time.monotonic() > warm_until)
        before_rss = rss()
        deadline = time.monotonic() + seconds
        quiet = measure(lambda: time.monotonic() > deadline)
        fit = subprocess.Popen([sys.executable, "-m", "kanal_collector", "predict", "fit",
                                "--db", path], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        started = time.monotonic()
        ended: list[resource.struct_rusage] = []

        def fit_ended() -> bool:
            pid, status, usage = os.wait4(fit.pid, os.WNOHANG)  # the fit's own rusage
            if pid:
                fit.returncode = os.waitstatus_to_exitcode(status)
                ended.append(usage)
            return bool(pid)

        busy = measure(fit_ended)
        fit_seconds = time.monotonic() - started
        after_rss = rss()
        fit_peak = ended[0].ru_maxrss
        if fit.returncode:
            print(f"the fit's process ended with exit status {fit.returncode}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q))

    print(f"ingest without a fit: {len(quiet)} requests, median {statistics.median(quiet):.2f} "
          f"ms, p99 {pct(quiet, 99):.2f} ms")
    print(f"ingest during a fit ({fit_seconds:.1f} s, `kanal predict fit` in its own "
          f"process): {len(busy)} requests, median {statistics.median(busy):.2f} ms, "
          f"p99 {pct(busy, 99):.2f} ms, max {max(busy):.2f} ms")
    print(f"server resident memory: {before_rss / 1024:.1f} MiB before the fit, "
          f"{after_rss / 1024:.1f} MiB after; the fit's process peaked at "
          f"{fit_peak / 1024:.1f} MiB")


def run_sizes(target: Target, sizes: list[int]) -> None:
    """The fit's stages at each size on one engine, and how they grow."""
    results: dict[int, dict[str, float]] = {}
    for n in sizes:
        path = target.fresh(f"shop_{n}")
        started = time.perf_counter()
        now = build(path, n)
        print(f"\n{target.engine}: {n:,} customers (+{n:,} visitors), built in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        results[n] = stages(target, path, n, now)
        base = results[n]["baseline: read"]
        for name, seconds in results[n].items():
            ratio = "" if name == "baseline: read" else f"  {seconds / base:6.1f}× the read"
            print(f"  {name:<16} {seconds:8.3f} s{ratio}", flush=True)
        target.drop(path)
    first = sizes[0]
    if len(sizes) > 1:
        print(f"\n{target.engine}: growth (time ÷ time at the smallest size):")
        for name in results[first]:
            row = "  ".join(
                f"{n // first:>5}× customers: {results[n][name] / results[first][name]:6.1f}×"
                for n in sizes[1:])
            print(f"  {name:<16} {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, nargs="+",
                        default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ingest", type=int, default=0,
                        help="customers of the database ingest latency is measured on")
    parser.add_argument("--postgres", metavar="URL",
                        help="also run on this PostgreSQL server (its user creates databases)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kanal-bench-predict-"))
    try:
        targets = [Target(tmp)] + ([Target(tmp, args.postgres)] if args.postgres else [])
        for target in targets:
            run_sizes(target, args.customers)
            if args.ingest:
                path = target.fresh("ingest")
                build(path, args.ingest)
                print(f"\n{target.engine}: ingest latency, {args.ingest:,} customers:",
                      flush=True)
                ingest_during_fit(tmp, path)
                target.drop(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
