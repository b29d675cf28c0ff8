"""What one on-site pull costs the collector, as campaigns grow (1×, 10×, 100×).

    python bench/bench_onsite.py [--requests 300]

An in-process collector (Flask's test client: no network, no server threads, so the
figure is Kanal's own work) on a fresh SQLite file: a visitor with a profile pulls the
messages of a page view. Each campaign has a slot of its own, so every one is matched,
rendered (sanitised) and signed: the worst case for N campaigns. Baselines in the same
run: `GET /healthz` through the same stack, and the cacheable site document. Figures
only; never fails on timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")
MESSAGE = """\
onsite:
  title: "Hi {{ traits.first_name | default('there') }}"
  body: "<p>Spring sale: <strong>20%</strong> off <a href='/sale'>everything</a>.</p>"
  button: Shop now
  url: /sale
"""


def timings(call: Callable[[], Any], n: int) -> tuple[float, float]:
    """(median, p95) in microseconds of `n` calls (after a few warm-up calls)."""
    for _ in range(5):
        call()
    spent = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        spent.append((time.perf_counter() - start) * 1e6)
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.95) - 1]


def collector(workdir: Path, campaigns: int) -> tuple[Any, dict[str, str], Any]:
    """An app with `campaigns` campaigns and one visitor with a profile."""
    from kanal_collector.app import build_processor, create_app
    from kanal_collector.clock import FakeClock
    from kanal_collector.config import Config
    from kanal_collector.store.keys import bootstrap

    (workdir / "messages").mkdir()
    (workdir / "messages" / "sale.yaml").write_text(MESSAGE)
    (workdir / "onsite").mkdir()
    for i in range(campaigns):
        (workdir / "onsite" / f"c{i}.yaml").write_text(
            f"message: sale\nlayout: slot\nslot: s{i}\npages: {{include: [\"/\", "
            f"\"/shop/*\"]}}\nfrequency: always\n")
    clock = FakeClock(1_790_000_000.0)
    app = create_app(Config(db=workdir / "kanal.db", rate_limit=0.0, sections={
        "messages": {"messages_dir": str(workdir / "messages")},
        "onsite": {"dir": str(workdir / "onsite")}}), clock=clock)
    runtime = app.extensions["kanal"]
    keys = bootstrap(runtime.db.conn(), int(clock.now() * 1000)) or {}
    client = app.test_client()
    client.post("/v1/identify", json={"anonymousId": "visitor", "traits": {
        "first_name": "Ada"}}, auth=(keys["public"], ""))
    processor = build_processor(runtime.db, clock=clock)
    processor.catch_up()
    processor.close()
    return app, keys, client


def measure(n: int, requests: int, out: Callable[[str], None], *, baselines: bool) -> None:
    """Print the pull's figures with `n` campaigns (and the baselines, first time)."""
    from kanal_collector.app import close_app

    with tempfile.TemporaryDirectory(prefix="kanal-bench-onsite-") as tmp:
        app, keys, client = collector(Path(tmp), n)
        try:
            if baselines:
                med, p95 = timings(lambda: client.get("/healthz"), requests)
                out(f"{'GET /healthz (baseline)':<44} {med:>10.0f} {p95:>10.0f} {'-':>9}")
                site = f"/onsite/site/{keys['public']}.json"
                med, p95 = timings(lambda: client.get(site), requests)
                out(f"{'GET /onsite/site/KEY.json':<44} {med:>10.0f} {p95:>10.0f} {'-':>9}")
            body = {"k": keys["public"], "a": "visitor", "url": "https://shop.example/",
                    "l": "en"}
            headers = {"User-Agent": UA}
            answer = client.post("/onsite/pull", json=body, headers=headers).get_json()
            med, p95 = timings(lambda: client.post("/onsite/pull", json=body,
                                                   headers=headers), requests)
            out(f"{f'POST /onsite/pull, {n} campaign(s) ({n}x)':<44} {med:>10.0f} "
                f"{p95:>10.0f} {len(answer['messages']):>9}")
        finally:
            close_app(app)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "collector"))
    out(f"{'what':<44} {'median µs':>10} {'p95 µs':>10} {'messages':>9}")
    for i, n in enumerate((1, 10, 100)):
        measure(n, args.requests, out, baselines=i == 0)
    out("\nEach campaign a page view matches costs its rules, a render (Jinja), the "
        "sanitiser (nh3) and a signature; campaigns a page's rules exclude cost only the "
        "rules.")


if __name__ == "__main__":
    main()
