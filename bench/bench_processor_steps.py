"""Processor benchmark: what each step costs per event, on top of a database of growing size.

    python bench/bench_processor_steps.py                    # 10k, 100k and 1M events
    python bench/bench_processor_steps.py --sizes 10000 100000

For each size a shop's log (bench_scale.py's generator: orders, sign-ups, log-ins that
merge anonymous browsing, campaign, search and social visits, product views and Kanal's
own email events; n/20 people over 85 days, in visits of about 6 events) is bulk-loaded
and applied by Kanal's processor; then 20,000 new events of the same people are
appended and applied, timing each step. The baseline, measured in the same run, is the
same 20,000 events applied on an empty database. Prints microseconds per event per step
and the processor's rate; never fails on timing.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_dashboard import JOURNEY  # noqa: E402
from bench_engines import prepare  # noqa: E402
from bench_scale import ON_TOP, bulk_load, shop_events  # noqa: E402

from kanal_collector.app import IDLE_BATCH, build_processor  # noqa: E402


def on_top(tmp: Path, n: int) -> tuple[float, dict[str, float]]:
    """(events/s, {step: µs per event}) of ON_TOP events applied on top of n: the first
    half in batches of 500 (ingest busy), the rest of 2,000 (ingest quiet), each half's
    rate in the dict too."""
    db, source = prepare(str(tmp / f"steps-{n}.db"), tmp / "journeys")
    try:
        if n:
            bulk_load(db.conn(), shop_events(n, source))
            processor = build_processor(db)
            processor.catch_up()
            processor.close()
        people = max(n, ON_TOP) // 20
        rows = shop_events(people * 20, source, seed=99, days=1, prefix="top")
        bulk_load(db.conn(), itertools.islice(rows, ON_TOP))
        processor = build_processor(db)
        spent: dict[str, float] = {}
        for step in processor.steps:
            apply = step.apply

            def timed(conn: Any, events: Any, apply: Any = apply, name: str = step.name,
                      ) -> None:
                started = time.perf_counter()
                apply(conn, events)
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

            step.apply = timed  # type: ignore[method-assign]
        rates: dict[str, float] = {}
        applied = 0
        total = 0.0
        for size, share in ((500, ON_TOP // 2), (IDLE_BATCH, ON_TOP - ON_TOP // 2)):
            processor.batch_size = processor.idle_batch_size = size
            started = time.perf_counter()
            done = 0
            while done < share and processor.run_once():
                done += processor.last_events
            processor.settle()  # the last batch's copy out of the WAL (on a thread)
            seconds = time.perf_counter() - started
            rates[f"events/s, batches of {size:,}"] = done / seconds
            applied += done
            total += seconds
        processor.catch_up()  # idle work (kept funnels) not timed
        processor.close()
        per_event = {name: 1e6 * s / applied for name, s in spent.items()}
        per_event["(reading, cursor, commit)"] = 1e6 * (total - sum(spent.values())) / applied
        return applied / total, {**per_event, **rates}
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kanal-steps-") as name:
        tmp = Path(name)
        (tmp / "journeys").mkdir()
        (tmp / "journeys" / "welcome.yaml").write_text(textwrap.dedent(JOURNEY),
                                                        encoding="utf-8")
        sizes = [0, *args.sizes]
        results = {n: on_top(tmp, n) for n in sizes}
    labels = list(results[0][1])
    print(f"Processor: {ON_TOP:,} new events applied on top of a database of N events "
          "(µs per event per step; N = 0 is the same-run baseline)")
    print(f"{'step':28}" + "".join(f"{n:>12,}" for n in sizes))
    for label in labels:
        digits = 0 if label.startswith("events/s") else 1
        print(f"{label:28}" + "".join(f"{results[n][1].get(label, 0.0):12.{digits}f}"
                                      for n in sizes))
    print(f"{'events/s':28}" + "".join(f"{results[n][0]:12.0f}" for n in sizes))
    print(f"{'× the empty database':28}" + "".join(
        f"{results[n][0] / results[0][0]:12.2f}" for n in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
