"""The processor step that keeps journey funnels and experiments per day of entry.

Triggers mark a journey's day when something its runs left changes (store/funnel_days.py);
this step counts marked days again from the runs (store/reports.keep_day) and unmarks
them, a few at a time while the processor is idle and one a second between batches. A
day kept less than `settle` seconds ago waits: today's runs change all the time, and a
report counts a marked day from the runs anyway, so keeping it again at every batch
would cost without helping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ..store import funnel_days
from ..store import reports as store
from ..store.connection import Connection
from ..store.events import StoredEvent

log = logging.getLogger("kanal.reports")

_IDLE_SECONDS = 0.25
"""How long one idle turn may keep days (the processor looks for events in between)."""
_BATCH_EVERY = 1.0
"""Between batches, a day is kept at most this often (seconds)."""


class FunnelStep:
    """Keeps `funnel_runs`, `funnel_sends` and `funnel_arms` for the marked days."""

    name = "funnels"

    def __init__(self, *, settle: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settle < 0:
            raise ValueError(f"settle must not be negative, not {settle!r}")
        self.settle = settle
        self.clock = clock
        self._kept_at: dict[tuple[str, int], float] = {}
        self._last_batch_keep = float("-inf")

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Keep one marked day now and then, so a busy processor keeps days too."""
        now = self.clock()
        if now - self._last_batch_keep >= _BATCH_EVERY:
            self._last_batch_keep = now
            self.keep(conn, most=1)

    def background(self, conn: Connection) -> bool:
        """Keep marked days for a moment; False when none was waiting."""
        return self.keep(conn, seconds=_IDLE_SECONDS) > 0

    def keep(self, conn: Connection, *, most: int | None = None,
             seconds: float | None = None) -> int:
        """Keep marked days, oldest first (at most `most`, or for about `seconds`);
        returns how many were kept."""
        started = now = self.clock()
        self._kept_at = {k: t for k, t in self._kept_at.items() if now - t < self.settle}
        kept = 0
        for journey, day in sorted(funnel_days.marked(conn, journey=None, first_day=None,
                                                      last_day=None),
                                   key=lambda pair: (pair[1], pair[0])):
            if (journey, day) in self._kept_at:
                continue
            txs = funnel_days.mark_txs(conn, journey, day)  # before counting: see the module
            store.keep_day(conn, journey, day)
            funnel_days.unmark(conn, journey, day, txs)
            now = self.clock()
            self._kept_at[(journey, day)] = now
            kept += 1
            if (most is not None and kept >= most) or \
                    (seconds is not None and now - started >= seconds):
                break
        if kept:
            log.debug("kept %d journey days of funnels", kept)
        return kept
