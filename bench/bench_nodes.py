"""Several `kanal serve` nodes on one PostgreSQL: what a node costs, and a paper estimate
of scale-out from the measured costs.

This machine has 2 cores, shared by the nodes, PostgreSQL and the load generator: more
nodes can't add throughput here, they can only add overhead. So part 1 measures the
overhead (CPU per event of nodes and of PostgreSQL, with the load spread over 1, 2 and
3 nodes), and the estimate (part 4) says what N machines would do, from those per-event
costs and the one part every node shares (part 2). Part 3 is what does scale on one
machine: sending, which waits on the provider.

1. Ingest over HTTP with 1, 2 and 3 nodes, the same load spread evenly over them (wrk,
   single events, POST /v1/track): requests/s, and CPU per event of the nodes (ingest
   and processing: measured until the processor has applied everything) and of
   PostgreSQL's processes. Baseline: 1 node, same run.
2. The sequencer every node's appends share: a transaction that takes the append lock
   and appends k events (what a node's group commit does), from 1 and 3 connections
   at once, k = 1, 10, 100: commits/s and events/s; beside the same appends without
   the lock and hint (the baseline: what ordering costs).
3. Sending 300 emails through an SMTP server that takes 20 ms a message, with 1, 2 and
   3 nodes: emails/s (latency-bound: the nodes' provider calls overlap).
4. The estimate: events/s with N node machines, from 1. and 2.

PostgreSQL is a throwaway cluster with durability on (tests/pg.sh, KANAL_PG_DURABLE=1),
or --postgres URL (a user that may create databases). Never fails on timing.

    python bench/bench_nodes.py            # ~4 minutes
    python bench/bench_nodes.py --quick    # ~1.5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import bench_ingest as http  # noqa: E402
from bench_dashboard import JOURNEY  # noqa: E402
from bench_engines import admin, database, load, prepare, throwaway_server  # noqa: E402

from kanal_collector.app import build_processor  # noqa: E402
from kanal_collector.store.db import Database, transaction  # noqa: E402
from kanal_collector.store.events import EventRow, append_events  # noqa: E402
from kanal_collector.store.schema import migrate  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECTIONS = 12
"""wrk connections in all, spread over the nodes."""


def postgres_cpu() -> float:
    """CPU seconds (user + system) of every PostgreSQL process on this machine so far."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        if name == "postgres":
            parts = rest.split()
            total += int(parts[11]) + int(parts[12])
    return total / _CLK_TCK


def start_nodes(workdir: Path, url: str, n: int, *, setup: Callable[[Path], None] | None = None,
                threads: int = 16) -> list[http.Server]:
    """`kanal serve` × n on one database, each in a directory of its own (`setup` writes
    its kanal.toml, journeys and messages first); the first prints the keys."""
    nodes: list[http.Server] = []
    keys: dict[str, str] = {}
    for i in range(n):
        node_dir = workdir / f"node-{i}"
        node_dir.mkdir(parents=True)
        if setup is not None:
            setup(node_dir)
        environ = http._environ()
        environ.update(KANAL_RATE_LIMIT=str(http.RATE_LIMIT),
                       KANAL_RATE_BURST=str(http.RATE_LIMIT))
        argv = [sys.executable, "-m", "kanal_collector", "serve", "--host", "127.0.0.1",
                "--port", "0", "--db", url, "--threads", str(threads)]
        process, lines = http._start(f"kanal-{i}", argv, node_dir, environ,
                                     r"Kanal listening on http://")
        for line in lines:
            if found := re.match(r"\s*(public|secret|admin) key: (\S+)", line):
                keys[found[1]] = found[2]
        where = re.search(r"http://[\d.]+:\d+", lines[-1])
        if where is None or "public" not in keys:
            process.kill()
            raise RuntimeError("unexpected `kanal serve` output:\n" + "\n".join(lines))
        nodes.append(http.Server(f"kanal-{i}", process, where[0], node_dir, keys, url))
    for node in nodes:
        http.wait_ready(node)
    return nodes


def drained(url: str, timeout: float = 300.0) -> None:
    """Wait until the processor has applied every event of the log."""
    db = Database(url)
    conn = db.connect()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            top = conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0
            row = conn.execute("SELECT position FROM cursors WHERE name = 'processor'"
                               ).fetchone()
            if row is not None and row[0] >= top:
                return
            time.sleep(0.1)
    finally:
        conn.close()
        db.close()


def ingest(server: str, tmp: Path, n: int, seconds: float) -> dict[str, float]:
    """Part 1 for one cluster size: figures of a wrk run spread over n nodes."""
    url = database(server, f"bench_nodes_{n}")
    with ExitStack() as stack:
        nodes = start_nodes(tmp / f"ingest-{n}-{time.monotonic_ns()}", url, n)
        for node in nodes:
            stack.callback(http.stop, node)
        per_node = CONNECTIONS // n
        warm = [threading.Thread(target=http.wrk, args=(node,), kwargs={
            "mode": "track", "seconds": 1, "threads": 1, "connections": per_node})
            for node in nodes]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        drained(url)
        runs: list[Any] = [None] * n
        cpu0 = sum(node.cpu_seconds() or 0 for node in nodes)
        pg0 = postgres_cpu()

        def load(i: int) -> None:
            runs[i] = http.wrk(nodes[i], mode="track", seconds=seconds, threads=1,
                               connections=per_node)

        started = time.monotonic()
        threads = [threading.Thread(target=load, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        drained(url)
        caught_up = time.monotonic() - started - wall
        cpu = sum(node.cpu_seconds() or 0 for node in nodes) - cpu0
        pg = postgres_cpu() - pg0
    admin(server, f"DROP DATABASE bench_nodes_{n} WITH (FORCE)")
    requests_done = sum(r.requests for r in runs)
    return {"rate": requests_done / max(r.seconds for r in runs),
            "node_ms": cpu * 1000 / requests_done, "pg_ms": pg * 1000 / requests_done,
            "p99": max(r.p99_ms for r in runs), "errors": sum(r.errors for r in runs),
            "caught_up": caught_up, "requests": requests_done}


def sequencer(server: str, k: int, connections: int, locked: bool,
              seconds: float) -> tuple[float, float]:
    """Part 2: (commits/s, events/s) of append transactions of k events each."""
    url = database(server, "bench_sequencer")
    db = Database(url)
    migrate(db.conn())
    with transaction(db.conn()) as conn:
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('bench', 0)")
    # Type and event are the rows' columns (store/events.py slim_body).
    body = json.dumps({"properties": {"x": 1}})
    counts = [0] * connections
    stop = threading.Event()

    def run(i: int) -> None:
        conn = db.connect()
        n = 0
        while not stop.is_set():
            now = int(time.time() * 1000)
            rows = [EventRow(1, f"{i}-{n}-{j}", "track", "Page Viewed", f"u{j}", None,
                             "server", "secret", 1, now, now, body) for j in range(k)]
            if locked:  # what a node's group commit does: the append lock, the hint
                with transaction(conn, writer=False):
                    append_events(conn, rows)
            else:  # the same rows, no lock and no hint
                with transaction(conn, claim=True):
                    append_events_unordered(conn, rows)
            n += 1
            counts[i] = n
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    db.close()
    admin(server, "DROP DATABASE bench_sequencer WITH (FORCE)")
    commits = sum(counts) / seconds
    return commits, commits * k


def append_events_unordered(conn: Any, rows: Sequence[EventRow]) -> None:
    """The event log's own multi-row INSERT, without the append lock (the baseline)."""
    from kanal_collector.store.events import _insert_rows

    conn.execute(_insert_rows(len(rows)), [v for row in rows for v in row])


class _SlowSMTP:
    """An aiosmtpd handler that takes `delay` seconds per message and counts them."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        self.received += 1
        return "250 OK"


def dispatch(server: str, tmp: Path, n: int, emails: int, delay: float) -> float:
    """Part 3: emails/s sending `emails` through n nodes to a server taking `delay` s each."""
    from kanal_testing import smtp_controller  # tests/: aiosmtpd on a free port

    handler = _SlowSMTP(delay)
    controller = smtp_controller(handler)
    controller.start()
    port = controller.port
    url = database(server, f"bench_dispatch_{n}")

    def setup(node_dir: Path) -> None:  # every node reads the same files
        (node_dir / "journeys").mkdir()
        (node_dir / "journeys" / "welcome.yaml").write_text(
            "name: welcome\ntrigger: {event: Signed Up}\nsteps:\n"
            "  - send: welcome\n    channel: email\n")
        (node_dir / "messages").mkdir()
        (node_dir / "messages" / "welcome.yaml").write_text(
            'kind: transactional\nemail:\n  subject: "Welcome"\n  text: "Hi."\n')
        (node_dir / "kanal.toml").write_text(
            f'[channels.email]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
            'from = "Shop <shop@example.com>"\n')

    try:
        with ExitStack() as stack:
            nodes = start_nodes(tmp / f"dispatch-{n}", url, n, setup=setup)
            for node in nodes:
                stack.callback(http.stop, node)
            batch: list[dict[str, Any]] = []
            for i in range(emails):
                batch += [{"type": "identify", "userId": f"u{i}",
                           "traits": {"email": f"u{i}@example.com"}},
                          {"type": "track", "event": "Signed Up", "userId": f"u{i}"}]
            started = time.monotonic()
            for i in range(0, len(batch), 100):
                r = requests.post(f"{nodes[0].url}/v1/batch",
                                  json={"batch": batch[i:i + 100]},
                                  auth=(nodes[0].keys["secret"], ""), timeout=30)
                r.raise_for_status()
            while handler.received < emails and time.monotonic() - started < 300:
                time.sleep(0.05)
            took = time.monotonic() - started
    finally:
        controller.stop()
    admin(server, f"DROP DATABASE bench_dispatch_{n} WITH (FORCE)")
    return handler.received / took


def processor_rate(server: str, tmp: Path, n: int) -> float:
    """The processor (all steps, one journey) over n events of a shop's log: events/s.
    One node at a time runs it, so this bounds what a cluster applies per second."""
    journeys = tmp / "journeys"
    journeys.mkdir(exist_ok=True)
    (journeys / "welcome.yaml").write_text(textwrap.dedent(JOURNEY), encoding="utf-8")
    db, source = prepare(database(server, "bench_processor"), journeys)
    load(db.conn(), n, source)
    processor = build_processor(db)
    started = time.perf_counter()
    applied = processor.catch_up()
    took = time.perf_counter() - started
    processor.close()
    db.close()
    admin(server, "DROP DATABASE bench_processor WITH (FORCE)")
    return applied / took


def best(make: Callable[[], dict[str, float]], rounds: int) -> dict[str, float]:
    """The run with the highest rate of `rounds` (a shared machine is noisy)."""
    return max((make() for _ in range(rounds)), key=lambda r: r["rate"])


def main(argv: list[str] | None = None) -> int:
    """Run the parts and print the figures and the estimate."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", help="a server URL (default: a throwaway cluster)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, one round")
    parser.add_argument("--node-cores", type=int, default=2,
                        help="cores of a node machine, for the estimate (default 2)")
    parser.add_argument("--db-cores", type=int, default=4,
                        help="cores of the PostgreSQL machine, for the estimate (default 4)")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else 6.0
    rounds = 1 if args.quick else 2
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kanal-nodes-")))
        server = args.postgres or throwaway_server(stack)
        with psycopg.connect(server) as conn:
            version = conn.info.server_version
            durable = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore
                       for name in ("fsync", "synchronous_commit")}
        print("Several kanal serve nodes on one PostgreSQL")
        print(f"  machine: {os.cpu_count()} cores shared by the nodes, PostgreSQL and wrk "
              f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}); Python "
              f"{platform.python_version()}, PostgreSQL {version // 10000}.{version % 100} "
              f"(fsync={durable['fsync']}, synchronous_commit="
              f"{durable['synchronous_commit']})")
        print("  On 2 cores more nodes cannot add throughput: part 1 measures what a node "
              "costs, not scale-out.\n", flush=True)

        print(f"1. ingest over HTTP, single events, wrk -c{CONNECTIONS} spread evenly over "
              f"the nodes ({seconds:g} s, best of {rounds})")
        print(f"   {'nodes':<6} {'req/s':>8} {'vs 1':>5}   {'node CPU ms/ev':>14} "
              f"{'PG CPU ms/ev':>12}   {'p99 ms':>7}   caught up")
        figures: dict[int, dict[str, float]] = {}
        for n in (1, 2, 3):
            got = best(lambda n=n: ingest(server, tmp, n, seconds), rounds)  # type: ignore
            figures[n] = got
            print(f"   {n:<6} {got['rate']:>8,.0f} {got['rate'] / figures[1]['rate']:>5.2f}   "
                  f"{got['node_ms']:>14.2f} {got['pg_ms']:>12.2f}   {got['p99']:>7.1f}   "
                  f"{got['caught_up']:.1f} s after the load (errors {got['errors']:.0f})",
                  flush=True)
        growth = figures[3]["node_ms"] / figures[1]["node_ms"]
        print(f"   CPU per event with 3 nodes is {growth:.2f}× that with 1 (the per-node "
              "overhead: pools, leases, wake-ups, each node's workers polling)\n")

        print(f"2. the sequencer: append transactions of k events ({seconds:g} s each)")
        print(f"   {'k':>4} {'conns':>5}   {'with the append lock':>26}   "
              f"{'without (baseline)':>26}   {'ratio':>5}")
        seq: dict[int, float] = {}
        for k in (1, 10, 100):
            for conns in (1, 3):
                c1, e1 = sequencer(server, k, conns, True, seconds)
                c0, e0 = sequencer(server, k, conns, False, seconds)
                if conns == 3:
                    seq[k] = e1
                print(f"   {k:>4} {conns:>5}   {c1:>8,.0f} commits {e1:>9,.0f} ev/s   "
                      f"{c0:>8,.0f} commits {e0:>9,.0f} ev/s   {e1 / e0:>5.2f}", flush=True)
        print("   With the lock, appends of all nodes commit one at a time (each waits for the "
              "one before it to be durable): commits/s stay those of one connection, and a "
              "node's group commit (more events a commit as load grows) is what raises "
              "events/s. Without it, PostgreSQL flushes concurrent commits together.\n")

        print("3. sending 300 emails, SMTP server taking 20 ms a message")
        sent = {n: dispatch(server, tmp, n, 300, 0.02) for n in (1, 2, 3)}
        for n, rate in sent.items():
            print(f"   {n} node(s): {rate:>6.1f} emails/s   {rate / sent[1]:.2f}× one node",
                  flush=True)
        print()

        events_for_processor = 20_000 if args.quick else 50_000
        processing = processor_rate(server, tmp, events_for_processor)
        node_ms, pg_ms = figures[1]["node_ms"], figures[1]["pg_ms"]
        node_cap = args.node_cores * 1000 / node_ms
        db_cap = args.db_cores * 1000 / pg_ms
        print(f"4. estimate (paper): N node machines of {args.node_cores} cores and one "
              f"PostgreSQL machine of {args.db_cores} cores")
        print(f"   a node: {node_ms:.2f} ms CPU per event → {node_cap:,.0f} events/s per "
              "machine")
        print(f"   PostgreSQL: {pg_ms:.2f} ms CPU per event → {db_cap:,.0f} events/s")
        print(f"   the sequencer (part 2, 3 writers): {seq[1]:,.0f} events/s at 1 event "
              f"a commit, {seq[10]:,.0f} at 10, {seq[100]:,.0f} at 100 (group commits "
              "grow under load)")
        print(f"   the processor (one node at a time, all steps, over {events_for_processor:,} "
              f"events of a shop's log): {processing:,.0f} events/s")
        for n in (1, 2, 4, 8):
            bounds = {"the nodes' CPU": n * node_cap, "PostgreSQL's CPU": db_cap,
                      "the sequencer": seq[100]}
            limit = min(bounds, key=bounds.__getitem__)
            lag = (f"; the processor falls behind above {processing:,.0f} events/s"
                   if bounds[limit] > processing else "")
            print(f"   {n} node(s): ingest ~{bounds[limit]:,.0f} events/s (bound by "
                  f"{limit}){lag}")
        print("   Assumes single events spread evenly over the nodes, a PostgreSQL machine "
              "doing nothing else and commits as fast as here (the sequencer's bound moves "
              "with the commit latency of its disk). Ingest acknowledges what it stored; "
              "profiles, segments and journeys follow at the processor's rate.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
