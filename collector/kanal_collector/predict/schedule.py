"""The refit schedule inside `kanal serve`: a worker that starts the fit's own process.

When the newest fit started `[predict] refit_every` ago (or there was none) and the shop
has orders enough, the worker starts `python -m kanal_collector.predict.job` and checks
on it at each poll; the serving process never imports the models (scipy.optimize,
scipy.special) and never waits for the fit.
The fit's log goes to the server's standard error; it ends itself if the server dies. Only the
process holding the workers' lease runs this worker; the fit itself takes the
`predict` lease, so a `kanal predict fit` run by hand meanwhile is refused, not doubled.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from ..clock import Clock
from ..config import Config
from ..errors import StorageError
from ..store import predict as store
from ..store.connection import DB_ERRORS, Connection
from ..store.db import Database
from .settings import PredictSettings

log = logging.getLogger("kanal.predict")

CHECK_EVERY = 60.0
"""Seconds between looks at whether a refit is due."""
_DB_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, StorageError)


def job_input(config: Config, now: float) -> str:
    """The line the scheduler writes to the job's standard input."""
    return json.dumps({"db": str(config.db), "synchronous": config.synchronous,
                       "busy_timeout": config.busy_timeout, "now": now,
                       "predict": dict(config.section("predict"))}, default=str)


class PredictScheduler:
    """A worker: refit on schedule, in a process of its own."""

    name = "predict-scheduler"

    def __init__(self, db: Database, config: Config, clock: Clock, *,
                 settings: PredictSettings | None = None) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.settings = settings or PredictSettings.from_config(config)
        self.process: subprocess.Popen[bytes] | None = None
        self._next_check = 0.0
        self._conn: Connection | None = None

    def due(self) -> bool:
        """True when no fit started within `refit_every`, and the shop has at least as
        many orders as the models need customers (fewer can't be enough data)."""
        if self._conn is None:
            self._conn = self.db.connect()  # the worker's own, never a pooled one
        conn = self._conn
        last = store.last_started(conn)
        now_ms = int(self.clock.now() * 1000)
        if last is not None and now_ms - last < self.settings.refit_every_ms:
            return False
        return store.order_count(conn) >= self.settings.min_customers

    def run_once(self) -> int:
        """Check on a running fit; start one when due. Never waits for it."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return 0
            if code:
                log.warning("the predictive fit's process ended with code %s", code)
            self.process = None
            self._next_check = 0.0
        now = self.clock.now()
        if not self.settings.enabled or now < self._next_check:
            return 0
        self._next_check = now + CHECK_EVERY
        try:
            due = self.due()
        except _DB_ERRORS:
            # Handled here, not by the supervisor: its retry closes the worker, and
            # closing this one stops a running fit.
            log.exception("could not tell whether a predictive fit is due; looking again "
                          "in %.0f s", CHECK_EVERY)
            self._drop_connection()
            return 0
        if due:
            self.start(now)
        return 0

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except _DB_ERRORS:  # closing what may already be broken
                pass

    def start(self, now: float) -> None:
        """Start the fit's process."""
        log.info("starting a predictive fit")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kanal_collector.predict.job", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert self.process.stdin is not None
        self.process.stdin.write((job_input(self.config, now) + "\n").encode())
        self.process.stdin.close()

    def close(self) -> None:
        """Stop a running fit (it records itself as interrupted), wait for it, and close
        the worker's connection."""
        self._drop_connection()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
