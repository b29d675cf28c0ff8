"""The fit's own process: `python -m kanal_collector.predict.job`, started by the
scheduler of `kanal serve` (schedule.py) with its settings as one JSON line on standard
input. Keeping the fit out of the serving process keeps numpy and scipy, the fit's
memory and its CPU-bound work away from ingest.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from ..clock import SystemClock
from ..config import Config
from ..store.db import Database
from .errors import PredictError
from .fit import run_fit
from .settings import PredictSettings


class StartedClock(SystemClock):
    """"Now" from the moment the scheduler decided to fit (its clock may be a test's),
    moving on with real time."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._began = time.monotonic()

    def now(self) -> float:
        """Seconds since the epoch."""
        return self._start + (time.monotonic() - self._began)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(1)  # the fit records itself as interrupted on the way out


def watch_parent(parent: int, every: float = 1.0) -> None:
    """End this process when the server that started it is gone (killed, say): its
    half-written transaction rolls back, and the next fit marks this one interrupted."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(3)

    threading.Thread(target=watch, name="kanal-parent-watch", daemon=True).start()


def main(line: str) -> int:
    """Run one fit from the scheduler's line; the exit code says how it went."""
    data: dict[str, Any] = json.loads(line)
    config = Config(db=str(data["db"]), synchronous=data["synchronous"],
                    busy_timeout=float(data["busy_timeout"]),
                    sections={"predict": data["predict"]})
    db = Database(config.db, synchronous=config.synchronous, busy_timeout=config.busy_timeout)
    log = logging.getLogger("kanal.predict")
    try:
        outcome = run_fit(db, PredictSettings.from_config(config), StartedClock(data["now"]),
                          progress=log.info)
    except PredictError as exc:
        log.error("%s", exc)
        return 1
    finally:
        db.close()
    log.info("fit %s: %s%s", outcome.fit_id, outcome.status,
             f" ({outcome.message})" if outcome.message else "")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    if len(sys.argv) > 1:
        watch_parent(int(sys.argv[1]))
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main(sys.stdin.readline()))
