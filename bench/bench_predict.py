"""Predictive scores benchmark: a fit's stages at 10k, 100k and 1M customers, beside the
time to read the same orders from the database (same run, same file), and ingest
latency while a fit runs beside ingest latency without one.

    python bench/bench_predict.py                         # 10k, 100k and 1M customers
    python bench/bench_predict.py --customers 10000 100000
    python bench/bench_predict.py --ingest 100000         # + ingest latency during a fit

Customers are drawn from BG/NBD (r 0.6, α 40 days, a 0.9, b 4) and Gamma-Gamma over two
years; their profiles (with every order in the state, as the processor keeps them) are
written straight into a fresh SQLite file, plus as many visitors without orders. Then:

    baseline: read    SELECT the states that hold orders (the fit's first query), rows only
    read + decode     predict.fit.read_customers: the same rows, JSON decoded, orders by day
    fit               summarise, fit BG/NBD and Gamma-Gamma (scipy), RFM edges
    score             every customer's scores (arrays)
    calibrate         a second fit on the training period, and the holdout comparison
    publish           make the rows and write them, chunk by chunk (a first fit: no events)
    run_fit           all of it, as `kanal predict fit` runs it

With --ingest N a `kanal serve` process runs on an N-customer file; single-event ingest
latency is measured for a while without a fit and then while `kanal predict fit` runs in
a second process, and the server's resident memory is read before and after. Never fails
on timing.
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

from kanal_collector.clock import FakeClock
from kanal_collector.predict import bgnbd
from kanal_collector.predict.calibration import calibrate
from kanal_collector.predict.data import DAY_MS, summarize
from kanal_collector.predict.fit import read_customers, run_fit
from kanal_collector.predict.publish import publish
from kanal_collector.predict.scores import Thresholds, fit_models, score
from kanal_collector.predict.settings import PredictSettings
from kanal_collector.store import predict as store
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.schema import migrate

PLANTED = bgnbd.BGNBD(0.6, 40.0, 0.9, 4.0)


def build(path: Path, customers: int, seed: int = 7) -> int:
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
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', ?)", (now,))
    db.close()
    return now


def _write(conn: object, rows: list[tuple[int, int, int, str]]) -> None:
    with transaction(conn):  # type: ignore[arg-type]
        conn.executemany(  # type: ignore[attr-defined]
            "INSERT INTO profiles (created_at, first_seen, last_seen, state) "
            "VALUES (?, ?, ?, ?)", rows)


def timed(what: dict[str, float], name: str, fn: object) -> object:
    started = time.perf_counter()
    out = fn()  # type: ignore[operator]
    what[name] = time.perf_counter() - started
    return out


def stages(path: Path, now: int) -> dict[str, float]:
    """Each stage of a fit timed on its own, then run_fit whole (on a copy)."""
    t: dict[str, float] = {}
    db = Database(path)
    conn = db.conn()
    conn.execute("PRAGMA cache_size = -65536")
    # Warm the OS cache once so every reader starts equal.
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
    copy = path.with_name("copy.db")
    shutil.copy(path, copy)
    db = Database(copy)
    timed(t, "run_fit", lambda: run_fit(db, PredictSettings(), FakeClock(now / 1000)))
    db.close()
    copy.unlink()
    return t


def ingest_during_fit(path: Path, seconds: float = 20.0) -> None:
    """Latency of single-event ingest without and with a fit running alongside."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KANAL_CONFIG": str(path.with_name("k.toml"))}
    path.with_name("k.toml").write_text("[predict]\nenabled = false\n", encoding="utf-8")
    conn_keys = subprocess.run(
        [sys.executable, "-m", "kanal_collector", "keys", "create", "--kind", "secret",
         "--db", str(path)], env=env, capture_output=True, text=True, check=True)
    key = conn_keys.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [sys.executable, "-m", "kanal_collector", "serve", "--port", "0", "--db", str(path)],
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
                                "--db", str(path)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        started = time.monotonic()
        busy = measure(lambda: fit.poll() is not None)
        fit_seconds = time.monotonic() - started
        after_rss = rss()
        # The children waited for so far: the key command and the fit; the fit is larger.
        fit_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, nargs="+",
                        default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ingest", type=int, default=0,
                        help="customers of the file ingest latency is measured on")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kanal-bench-predict-"))
    try:
        results: dict[int, dict[str, float]] = {}
        for n in args.customers:
            path = tmp / f"shop-{n}.db"
            started = time.perf_counter()
            now = build(path, n)
            print(f"\n{n:,} customers (+{n:,} visitors), built in "
                  f"{time.perf_counter() - started:.1f} s")
            results[n] = stages(path, now)
            base = results[n]["baseline: read"]
            for name, seconds in results[n].items():
                ratio = "" if name == "baseline: read" else f"  {seconds / base:6.1f}× the read"
                print(f"  {name:<16} {seconds:8.3f} s{ratio}")
            path.unlink()
        first = args.customers[0]
        if len(args.customers) > 1:
            print("\ngrowth (time ÷ time at the smallest size):")
            for name in results[first]:
                row = "  ".join(
                    f"{n // first:>5}× customers: {results[n][name] / results[first][name]:6.1f}×"
                    for n in args.customers[1:])
                print(f"  {name:<16} {row}")
        if args.ingest:
            path = tmp / "ingest.db"
            build(path, args.ingest)
            print(f"\ningest latency, {args.ingest:,} customers:")
            ingest_during_fit(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
