"""Ingest benchmarks: Kanal's collector beside a baseline measured in the same run.

1. Single-event ingest (POST /v1/track, Basic auth with the public key) against a bare
   Flask endpoint that only parses the JSON body, both served by waitress with the same
   settings; load from wrk on loopback, ~20 User-Agents, a fresh messageId each time.
2. Batch ingest (POST /v1/batch, 100 events a request) in events/s against raw SQLite
   `executemany` of the same rows into the same schema and pragmas, one commit per 100.
3. p99 latency at a fixed moderate request rate (wrk paced by its Lua `delay()`).

Kanal runs as `kanal serve` (workers on) in a temporary directory, with the rate limit
raised (KANAL_RATE_LIMIT) so that the limiter never answers 429. Runs of each pair are
interleaved, because a small shared machine is noisy. A benchmark never fails on timing.

    python bench/bench_ingest.py            # ~2.5 minutes
    python bench/bench_ingest.py --quick    # ~30 seconds
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from kanal_collector.config import Config
from kanal_collector.store.connection import connect_sqlite as connect
from kanal_collector.store.schema import migrate
from kanal_collector.store.simulate import open_readonly
from kanal_collector.workers import PROCESSOR_CURSOR

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk_ingest.lua"
BARE_APP = HERE / "bare_app.py"
RATE_LIMIT = 1_000_000
BATCH_SIZE = 100
# The statement Kanal's event log appends with (kanal_collector/store/events.py).
INSERT = (
    "INSERT OR IGNORE INTO events (source_id, message_id, type, event, user_id, "
    "anonymous_id, origin, key_kind, verified, timestamp, received_at, body) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Server:
    """A server process on loopback."""

    name: str
    process: subprocess.Popen[str]
    url: str
    workdir: Path
    keys: dict[str, str] = field(default_factory=dict)
    db: str | None = None
    """Kanal's database: a SQLite path or a postgresql:// URL."""

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process so far (Linux), else None."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        except OSError:
            return None
        parts = fields.split()
        return (int(parts[11]) + int(parts[12])) / _CLK_TCK


@dataclass
class Run:
    """One wrk run's figures."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float | None

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def _start(name: str, argv: Sequence[str], workdir: Path, env: dict[str, str],
           pattern: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a server and read its stdout until a line matches `pattern`."""
    stderr = open(workdir / f"{name}.stderr", "w")
    process = subprocess.Popen(
        list(argv), cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    stderr.close()
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            break
        if time.monotonic() > deadline:
            break
    else:
        raise RuntimeError(f"{name} exited early:\n" + "\n".join(lines)
                           + (workdir / f"{name}.stderr").read_text())
    # Keep draining stdout so that a chatty server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()
    return process, lines


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANAL_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_kanal(workdir: Path, threads: int, synchronous: str,
                db: str | None = None) -> Server:
    """`kanal serve` on a free loopback port with a fresh database (a new SQLite file in
    `workdir`, or the empty PostgreSQL database `db`)."""
    workdir.mkdir(parents=True)
    env = _environ()
    env.update(KANAL_RATE_LIMIT=str(RATE_LIMIT), KANAL_RATE_BURST=str(RATE_LIMIT),
               KANAL_SYNCHRONOUS=synchronous)
    db = db or str(workdir / "kanal.db")
    argv = [sys.executable, "-m", "kanal_collector", "serve", "--host", "127.0.0.1",
            "--port", "0", "--db", db, "--threads", str(threads)]
    process, lines = _start("kanal", argv, workdir, env, r"Kanal listening on http://")
    keys = {}
    for line in lines:
        found = re.match(r"\s*(public|secret|admin) key: (\S+)", line)
        if found:
            keys[found[1]] = found[2]
    url = re.search(r"http://[\d.]+:\d+", lines[-1])
    if url is None or "public" not in keys:
        process.kill()
        raise RuntimeError("unexpected `kanal serve` output:\n" + "\n".join(lines))
    return Server("kanal", process, url[0], workdir, keys, db)


def start_bare(workdir: Path, threads: int) -> Server:
    """The bare Flask endpoint under waitress with the same settings."""
    workdir.mkdir(parents=True)
    argv = [sys.executable, str(BARE_APP), "--host", "127.0.0.1", "--port", "0",
            "--threads", str(threads)]
    process, lines = _start("bare", argv, workdir, _environ(), r"Bare listening on http://")
    url = re.search(r"http://[\d.]+:\d+", lines[-1])
    if url is None:
        process.kill()
        raise RuntimeError("unexpected bare app output:\n" + "\n".join(lines))
    return Server("bare", process, url[0], workdir)


def stop(server: Server) -> None:
    """SIGTERM (kanal serve stops its workers cleanly), then SIGKILL after 15 s."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def wait_ready(server: Server) -> None:
    """Wait until the port accepts connections."""
    host, port = server.url.removeprefix("http://").split(":")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wrk(server: Server, *, mode: str, seconds: float, threads: int, connections: int,
        rate_per_connection: float = 0.0) -> Run:
    """Run wrk with the Lua script against `server`; figures from its done() line."""
    auth = ""
    if server.keys:
        auth = "Basic " + base64.b64encode(f"{server.keys['public']}:".encode()).decode()
    prefix = uuid.uuid4().hex[:10]
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(LUA), server.url, "--", mode, prefix, auth,
            str(BATCH_SIZE), str(rate_per_connection)]
    before = server.cpu_seconds()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    after = server.cpu_seconds()
    found = re.search(r"KANAL_RESULT (\{.*\})", out.stdout)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(found[1])
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    cpu = None
    if before is not None and after is not None and data["requests"]:
        cpu = (after - before) * 1000 / data["requests"]
    return Run(requests=data["requests"], seconds=data["duration_us"] / 1e6, errors=errors,
               p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
               cpu_ms_per_request=cpu)


def count_events(db: str) -> int:
    """How many events a Kanal database holds (read-only)."""
    conn = open_readonly(db)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def wait_drained(server: Server, timeout: float = 120.0) -> float:
    """Wait until Kanal's processor has applied every event in the log, so that its
    catching up never runs during the next measurement; return the seconds waited."""
    if server.db is None:
        return 0.0
    start = time.monotonic()
    conn = open_readonly(server.db)
    try:
        while time.monotonic() - start < timeout:
            last = conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0
            row = conn.execute("SELECT position FROM cursors WHERE name = ?",
                               (PROCESSOR_CURSOR,)).fetchone()
            if row is not None and row[0] >= last:
                break
            time.sleep(0.05)
    finally:
        conn.close()
    return time.monotonic() - start


def sample_rows(db: str, n: int) -> list[tuple[Any, ...]]:
    """`n` rows exactly as Kanal stored them (the raw baseline appends copies)."""
    conn = open_readonly(db)
    try:
        rows = conn.execute(
            "SELECT source_id, message_id, type, event, user_id, anonymous_id, origin, "
            "key_kind, verified, timestamp, received_at, body FROM events ORDER BY id LIMIT ?",
            (n,),
        ).fetchall()
    finally:
        conn.close()
    rows = [tuple(r) for r in rows]
    if len(rows) < n:
        raise RuntimeError(f"only {len(rows)} events stored; wanted {n} sample rows")
    return rows


@contextmanager
def raw_database(path: Path, synchronous: str) -> Iterator[sqlite3.Connection]:
    """A fresh file with Kanal's schema and pragmas and the source the rows point at."""
    conn = connect(str(path), synchronous=synchronous)
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def raw_sqlite(conn: sqlite3.Connection, template: Sequence[tuple[Any, ...]],
               seconds: float, counter: Iterator[int]) -> tuple[int, float]:
    """Append copies of `template` (fresh message ids), one transaction of
    executemany per batch, for `seconds` of SQLite time; return (rows, seconds).

    Only BEGIN…executemany…COMMIT is timed: building the copies is left out, which
    favours the baseline.
    """
    rows = 0
    spent = 0.0
    while spent < seconds:
        batch = [(r[0], f"raw-{next(counter)}", *r[2:]) for r in template]
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, batch)
        conn.execute("COMMIT")
        spent += time.perf_counter() - start
        rows += len(batch)
    return rows, spent


def ensure_source(conn: sqlite3.Connection, source_id: int) -> None:
    """The sources row the copied events refer to (foreign keys are on)."""
    conn.execute("INSERT OR IGNORE INTO sources (id, name, created_at) VALUES (?, ?, 0)",
                 (source_id, f"bench-{source_id}"))


def fmt_rate(value: float) -> str:
    """A rate with thousands separators."""
    return f"{value:,.0f}"


def fmt_cpu(run: Run) -> str:
    """Server CPU per request, when known."""
    return "-" if run.cpu_ms_per_request is None else f"{run.cpu_ms_per_request:.2f}"


def total_rate(runs: Sequence[Run]) -> float:
    """Requests per second over all runs together."""
    seconds = sum(r.seconds for r in runs)
    return sum(r.requests for r in runs) / seconds if seconds else 0.0


def main(argv: list[str] | None = None) -> int:
    """Run the three benchmarks and print the table."""
    default_threads = Config().threads
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a ~30 s version")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per pair")
    parser.add_argument("--seconds", type=float, help="length of one wrk run")
    parser.add_argument("--threads", type=int, default=default_threads,
                        help=f"waitress threads of both servers (default {default_threads}, "
                             "Kanal's default)")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk connections for the throughput runs")
    parser.add_argument("--batch-connections", type=int, default=8,
                        help="wrk connections for the batch run")
    parser.add_argument("--latency-rate", type=float, default=500.0,
                        help="requests/s of the latency run (default 500)")
    parser.add_argument("--latency-connections", type=int, default=4)
    parser.add_argument("--synchronous", default="FULL", help="Kanal's synchronous pragma")
    parser.add_argument("--only", choices=("single", "batch", "latency"), action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    latency_seconds = 4.0 if args.quick else 10.0
    parts = set(args.only or ("single", "batch", "latency"))
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    cores = os.cpu_count()
    print("Kanal ingest benchmark")
    print(f"  machine: {cores} cores ({platform.machine()}), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {platform.system()} "
          f"{platform.release()}")
    print(f"  Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"waitress {version('waitress')}, Flask {version('flask')}, "
          f"wrk {_wrk_version()}")
    print(f"  both servers: waitress threads={args.threads} (same create_server settings); "
          f"Kanal: `kanal serve` with workers, synchronous={args.synchronous}, WAL, "
          f"KANAL_RATE_LIMIT={RATE_LIMIT} (raised so nothing is rate limited)")
    print(f"  load: wrk on loopback, -t2 -c{args.connections} (single), "
          f"-t1 -c{args.batch_connections} (batch of {BATCH_SIZE}), "
          f"{rounds} interleaved round(s) of {seconds:g} s per side")
    print(flush=True)

    results: list[tuple[str, str, str, str, str]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kanal-bench-")))
        bare = start_bare(tmp / "bare", args.threads)
        stack.callback(stop, bare)

        if "single" in parts or "latency" in parts:
            kanal = start_kanal(tmp / "kanal-single", args.threads, args.synchronous)
            stack.callback(stop, kanal)
            wait_ready(kanal)
            wait_ready(bare)
            # Warm up both (imports, UA cache, first connections).
            for server in (kanal, bare):
                wrk(server, mode="track", seconds=1, threads=2, connections=args.connections)
                wait_drained(server)

        if "single" in parts:
            print("1. single-event ingest, POST /v1/track (requests/s)")
            print(f"   {'round':<6} {'Kanal':>9} {'bare Flask':>11} {'ratio':>6}   "
                  f"{'CPU ms/req K/B':>15}   {'p99 ms K/B':>12}")
            kanal_runs: list[Run] = []
            bare_runs: list[Run] = []
            drains: list[float] = []
            for i in range(rounds):
                order = (kanal, bare) if i % 2 == 0 else (bare, kanal)
                got = {}
                for server in order:
                    got[server.name] = wrk(server, mode="track", seconds=seconds, threads=2,
                                           connections=args.connections)
                    drains.append(wait_drained(server))
                k, b = got["kanal"], got["bare"]
                kanal_runs.append(k)
                bare_runs.append(b)
                print(f"   {i + 1:<6} {fmt_rate(k.rate):>9} {fmt_rate(b.rate):>11} "
                      f"{k.rate / b.rate:>6.2f}   {fmt_cpu(k):>7}/{fmt_cpu(b):<7}   "
                      f"{k.p99_ms:>5.1f}/{b.p99_ms:<6.1f}", flush=True)
            k_rate, b_rate = total_rate(kanal_runs), total_rate(bare_runs)
            errors = sum(r.errors for r in kanal_runs + bare_runs)
            stored = count_events(kanal.db) if kanal.db else 0
            sent = sum(r.requests for r in kanal_runs)
            print(f"   all    {fmt_rate(k_rate):>9} {fmt_rate(b_rate):>11} "
                  f"{k_rate / b_rate:>6.2f}   (errors/non-2xx: {errors}; Kanal stored "
                  f"{stored:,} events for {sent:,} answered requests incl. warm-up; "
                  f"its processor caught up within {max(drains):.1f} s of each run)\n",
                  flush=True)
            results.append(("single event req/s", fmt_rate(k_rate),
                            f"{fmt_rate(b_rate)} (bare Flask)", f"{k_rate / b_rate:.2f}",
                            ">= 0.7"))

        if "batch" in parts:
            kanal_b = start_kanal(tmp / "kanal-batch", args.threads, args.synchronous)
            stack.callback(stop, kanal_b)
            wait_ready(kanal_b)
            wrk(kanal_b, mode="batch", seconds=1, threads=1, connections=args.batch_connections)
            wait_drained(kanal_b)
            template = sample_rows(kanal_b.db, BATCH_SIZE) if kanal_b.db else []
            raw = stack.enter_context(raw_database(tmp / "raw.db", args.synchronous))
            ensure_source(raw, template[0][0])
            counter = iter(range(10**12))
            raw_sqlite(raw, template, 0.5, counter)  # warm up
            print(f"2. batch ingest, {BATCH_SIZE} events a request (events/s)")
            print(f"   {'round':<6} {'Kanal':>9} {'raw SQLite':>11} {'ratio':>6}   "
                  f"{'Kanal CPU ms/event':>18}")
            k_events = k_seconds = r_rows = r_seconds = 0.0
            drains = []
            for i in range(rounds):
                steps = ("kanal", "raw") if i % 2 == 0 else ("raw", "kanal")
                for step in steps:
                    if step == "kanal":
                        run = wrk(kanal_b, mode="batch", seconds=seconds, threads=1,
                                  connections=args.batch_connections)
                        k_rate = run.rate * BATCH_SIZE
                        k_events += run.requests * BATCH_SIZE
                        k_seconds += run.seconds
                        k_cpu = (run.cpu_ms_per_request or 0.0) / BATCH_SIZE
                        errors = run.errors
                        drains.append(wait_drained(kanal_b))
                    else:
                        rows, spent = raw_sqlite(raw, template, seconds, counter)
                        r_rate = rows / spent
                        r_rows += rows
                        r_seconds += spent
                print(f"   {i + 1:<6} {fmt_rate(k_rate):>9} {fmt_rate(r_rate):>11} "
                      f"{k_rate / r_rate:>6.2f}   {k_cpu:>18.3f}"
                      + (f"   errors {errors}" if errors else ""), flush=True)
            k_all, r_all = k_events / k_seconds, r_rows / r_seconds
            stored = count_events(kanal_b.db) if kanal_b.db else 0
            print(f"   all    {fmt_rate(k_all):>9} {fmt_rate(r_all):>11} {k_all / r_all:>6.2f}"
                  f"   (Kanal stored {stored:,} events; its processor needed up to "
                  f"{max(drains):.1f} s after a run to catch up)\n", flush=True)
            results.append((f"batch of {BATCH_SIZE} events/s", fmt_rate(k_all),
                            f"{fmt_rate(r_all)} (raw SQLite)", f"{k_all / r_all:.2f}", ">= 0.5"))

        if "latency" in parts:
            conns = args.latency_connections
            per_conn = args.latency_rate / conns
            print(f"3. latency at ~{args.latency_rate:g} requests/s "
                  f"(wrk -t{conns} -c{conns}, each paced at {per_conn:g}/s), POST /v1/track")
            got = {}
            for server in (kanal, bare):
                wait_drained(server)
                got[server.name] = wrk(server, mode="track", seconds=latency_seconds,
                                       threads=conns, connections=conns,
                                       rate_per_connection=per_conn)
            for name, label in (("kanal", "Kanal"), ("bare", "bare Flask")):
                run = got[name]
                print(f"   {label:<11} achieved {run.rate:>6.0f} req/s   p50 {run.p50_ms:6.2f} ms"
                      f"   p99 {run.p99_ms:6.2f} ms   errors {run.errors}")
            print(flush=True)
            results.append((f"p99 ms at {args.latency_rate:g} req/s",
                            f"{got['kanal'].p99_ms:.1f}",
                            f"{got['bare'].p99_ms:.1f} (bare Flask)", "-", "-"))

    print("Summary (same run)")
    header = ("figure", "Kanal", "baseline", "ratio", "goal")
    widths = [max(len(row[i]) for row in [header, *results]) for i in range(5)]
    for row in [header, *results]:
        print("  " + "  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return 0


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return found[1] if found else "?"


if __name__ == "__main__":
    sys.exit(main())
