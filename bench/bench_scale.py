"""Scale benchmark: every dashboard page and `kanal report` command on a big database,
beside the same figures on a database 10× smaller, built and measured in the same run.

    python bench/bench_scale.py --events 100000    # baseline 10k (~3 min here)
    python bench/bench_scale.py --events 1000000   # baseline 100k (~25 min here)
    python bench/bench_scale.py                    # 10M, baseline 1M (a later session)
    python bench/bench_scale.py --events 25000000  # the 25M option

For each size the log (page views, some from campaigns, product views, sign-ups, orders;
n/20 people over 85 days, the generator of bench_engines.py) is bulk-loaded through the
storage interface (executemany on SQLite, COPY on PostgreSQL); the derived tables
(profiles, daily counters, journey runs) are then built by Kanal's real processor, whose
rate is printed. A `kanal serve` process is started on the database; ingest on top is
measured with batches of 100 events (POST /v1/batch) and the processor drains them; the
server's resident memory is read from /proc after the pages are loaded. Each dashboard
page is loaded --loads times signed in; each `kanal report` command runs --loads times as
a fresh process (what a user waits for, Python start included). Bytes per stored event
is the database's size on disk over its events. Never fails on timing.

100M events is an estimate, not a run: at the bytes per event printed here it would need
about 100× the 1M database's disk, more than this machine has.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_dashboard import JOURNEY, sign_in  # noqa: E402
from bench_engines import load, prepare  # noqa: E402
from kanal_testing import start_collector  # noqa: E402

from kanal_collector.app import build_processor  # noqa: E402
from kanal_collector.clock import utc_iso  # noqa: E402
from kanal_collector.store import keys as keystore  # noqa: E402

PAGES = ["/dashboard/", "/dashboard/attribution", "/dashboard/journeys",
         "/dashboard/journeys/welcome", "/dashboard/experiments",
         "/dashboard/recommendations", "/dashboard/deliverability", "/dashboard/predict",
         "/dashboard/audiences", "/dashboard/costs"]
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


def ingest(url: str, secret: str, batches: int) -> float:
    """Events/s of `batches` POST /v1/batch requests of 100 events each."""
    now = int(time.time() * 1000)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    started = time.perf_counter()
    for b in range(batches):
        batch = [{"type": "track", "event": "Product Viewed", "userId": f"u{b * 100 + i}",
                  "messageId": f"ingest-{b}-{i}", "timestamp": utc_iso(now / 1000),
                  "properties": {"product_id": "p1", "price": 49.5}} for i in range(100)]
        r = session.post(f"{url}/v1/batch", data=json.dumps({"batch": batch}), timeout=60,
                         headers={"Content-Type": "application/json"})
        r.raise_for_status()
    return batches * 100 / (time.perf_counter() - started)


def measure_size(tmp: Path, n: int, loads: int) -> dict[str, float]:
    """Build a database of n events and measure it; figures by label."""
    out: dict[str, float] = {}
    journeys = tmp / "journeys"
    path = tmp / f"scale-{n}.db"
    db, source = prepare(str(path), journeys)
    conn = db.conn()
    out["bulk load (events/s)"] = n / load(conn, n, source)
    processor = build_processor(db)
    started = time.perf_counter()
    applied = processor.catch_up()
    out["processor, from empty (events/s)"] = applied / (time.perf_counter() - started)
    processor.close()
    now = int(time.time() * 1000)
    admin = keystore.create_key(conn, "admin", now)
    secret = keystore.create_key(conn, "secret", now)
    db.close()
    out["bytes per stored event"] = sum(
        p.stat().st_size for p in tmp.glob(f"scale-{n}.db*")) / n
    collector = start_collector(path, env={"KANAL_JOURNEYS_DIR": str(journeys)})
    try:
        out["ingest on top, batches of 100 (events/s)"] = ingest(collector.url, secret, 50)
        signed_in = sign_in(collector.url, admin)
        for page in PAGES:
            url = f"{collector.url}{page}?since=90d"
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
    parser.add_argument("--loads", type=int, default=5, help="loads of each page/report")
    args = parser.parse_args(argv)
    small, big = args.events // 10, args.events
    with tempfile.TemporaryDirectory(prefix="kanal-scale-") as name:
        tmp = Path(name)
        (tmp / "journeys").mkdir()
        (tmp / "journeys" / "welcome.yaml").write_text(textwrap.dedent(JOURNEY),
                                                        encoding="utf-8")
        print(f"Kanal at scale: {big:,} events beside {small:,} (SQLite, {os.cpu_count()} "
              f"cores, load average {os.getloadavg()[0]:.2f}, {args.loads} loads each)",
              flush=True)
        figures = {}
        for n in (small, big):
            started = time.perf_counter()
            figures[n] = measure_size(tmp, n, args.loads)
            print(f"  measured {n:,} events in {time.perf_counter() - started:.0f} s",
                  flush=True)
        print(f"\n{'figure':58} {small:>12,} {big:>12,}  growth")
        for label, value in figures[small].items():
            grown = figures[big][label] / value if value else float("nan")
            print(f"{label:58} {value:12.1f} {figures[big][label]:12.1f}  {grown:5.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
