"""Benchmark: the kanal SDK beside segment-analytics-python, same run, same local sink.

    python bench/bench_sdk.py [--events N] [--rounds R]

Figures:
- per-call cost: microseconds to queue one `track()` (N calls, consumer running);
- end-to-end: events/s for N tracks + flush, until the sink has counted all of them.

The sink is a small HTTP/1.1 keep-alive server in a separate process (so it does not
share the GIL with the SDKs), answering 200 to POST /v1/batch and counting events.
Each figure is the best of R rounds, the SDKs alternating. Never fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sdk"))

_OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
       b'{"success":true}')


def run_sink() -> None:
    """The sink process: print the port, then serve until killed."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET /count"):
                    text = str(count).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b"
                                 % (len(text), text))
                else:
                    count += body.count(b'"messageId"')
                    writer.write(_OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def sink_count(url: str) -> int:
    with urllib.request.urlopen(url + "/count", timeout=5) as res:
        return int(res.read())


def properties(i: int) -> dict[str, Any]:
    return {"plan": "pro", "amount": 19.99, "source": "bench", "index": i,
            "tags": ["a", "b"], "cart": {"items": 2, "currency": "EUR"}}


def bench_kanal(url: str, n: int) -> tuple[float, float]:
    import kanal

    client = kanal.Client("bench-key", host=url, max_queue_size=n + 1)
    return _measure(client.track, client.flush, client.shutdown, url, n)


def bench_kanal_spool(url: str, n: int) -> tuple[float, float]:
    import tempfile

    import kanal

    with tempfile.TemporaryDirectory() as tmp:
        client = kanal.Client("bench-key", host=url, max_queue_size=n + 1,
                              spool_path=os.path.join(tmp, "spool.db"))
        return _measure(client.track, client.flush, client.shutdown, url, n)


def bench_segment(url: str, n: int) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import segment.analytics as sa

    client = sa.Client("bench-key", host=url, max_queue_size=n + 1)

    def track(user_id: str, event: str, props: dict[str, Any]) -> None:
        client.track(user_id=user_id, event=event, properties=props)

    return _measure(track, client.flush, client.shutdown, url, n)


def _measure(
    track: Callable[[str, str, dict[str, Any]], object], flush: Callable[[], object],
    shutdown: Callable[[], object], url: str, n: int,
) -> tuple[float, float]:
    props = [properties(i) for i in range(n)]
    before = sink_count(url)
    perf = time.perf_counter
    start = perf()
    for p in props:
        track("user-123", "Order Completed", p)
    queued = perf()
    flush()
    while sink_count(url) - before < n:
        time.sleep(0.001)
    done = perf()
    shutdown()
    return (queued - start) / n * 1e6, n / (done - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    sink = subprocess.Popen([sys.executable, __file__, "--sink"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        results: dict[str, list[tuple[float, float]]] = {"kanal": [], "segment": [],
                                                          "spool": []}
        bench_kanal(url, 1000)  # warm up imports and connections
        bench_segment(url, 1000)
        for _ in range(args.rounds):
            results["segment"].append(bench_segment(url, args.events))
            results["kanal"].append(bench_kanal(url, args.events))
            results["spool"].append(bench_kanal_spool(url, args.events // 4))
    finally:
        sink.kill()
        sink.wait()
    call = {k: min(r[0] for r in v) for k, v in results.items()}
    e2e = {k: max(r[1] for r in v) for k, v in results.items()}
    print(f"\n{args.events} track() calls per round, best of {args.rounds} rounds, "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print(f"{'':24}{'kanal':>12}{'segment':>12}{'ratio':>10}{'goal':>12}")
    print(f"{'per-call cost (us)':24}{call['kanal']:12.2f}{call['segment']:12.2f}"
          f"{call['segment'] / call['kanal']:9.1f}x{'>= 4x':>12}")
    print(f"{'end-to-end (events/s)':24}{e2e['kanal']:12,.0f}{e2e['segment']:12,.0f}"
          f"{e2e['kanal'] / e2e['segment']:9.1f}x{'>= 2x':>12}")
    print(f"\nkanal with spool_path (SQLite insert per call, {args.events // 4} calls): "
          f"{call['spool']:.1f} us per call, {e2e['spool']:,.0f} events/s end-to-end")


if __name__ == "__main__":
    main()
