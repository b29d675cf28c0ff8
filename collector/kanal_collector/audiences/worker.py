"""The audience worker inside `kanal serve`: syncs each audience when it is due.

An audience is due at its schedule (`every`, from the end of its last round), when a
sync was asked for (`kanal audiences sync` from the admin API or the dashboard), a
minute after journey steps or a forget changed who is in it, and when a failed round's
wait is over. Each `run_once` moves one audience at most a few batches on, so stopping
`kanal serve` never waits for a long upload; the round goes on at the next call.
Time comes from the injected clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..clock import Clock
from ..config import Config
from ..store import audience_syncs as syncs
from ..store.connection import Connection
from ..store.db import Database
from ..store.profiles import widen_cache
from .destination import Destination
from .errors import AudienceBusy
from .plugins import build_destination, check_audiences
from .settings import AudienceSettings
from .sync import AudienceSync, new_owner

log = logging.getLogger("kanal.audiences")

DIRTY_DELAY_MS = 60_000
"""A changed audience (journey steps, a forget) is synced at most this often."""
BATCHES_PER_CALL = 5


def due_reason(state: Mapping[str, Any], now: int) -> str | None:
    """Why an audience should be synced now (first, schedule, request, journey, retry,
    continue), or None."""
    retry_at = state.get("retry_at")
    if retry_at is not None and retry_at > now:
        return None
    if state.get("run_id") is not None:
        return "retry" if state.get("failures") else "continue"
    if state.get("requested_at") is not None:
        return "request"
    if state.get("synced_at") is None:
        return "first"
    if state.get("next_at") is not None and state["next_at"] <= now:
        return "schedule"
    dirty = state.get("dirty_at")
    if dirty is not None and now - int(state["synced_at"]) >= DIRTY_DELAY_MS:
        return "journey"
    return None


class AudienceWorker:
    """Syncs the configured audiences on schedule (one of the supervisor's workers)."""

    name = "audiences"

    def __init__(self, db: Database, clock: Clock, audiences: Mapping[str, AudienceSettings],
                 destinations: Mapping[str, Destination], *,
                 batches_per_call: int = BATCHES_PER_CALL) -> None:
        self.db = db
        self.clock = clock
        self.audiences = dict(audiences)
        self.destinations = dict(destinations)
        self.batches_per_call = batches_per_call
        self.owner = new_owner()
        self._conn: Connection | None = None

    @classmethod
    def from_config(cls, db: Database, clock: Clock, config: Config) -> AudienceWorker:
        """The worker of kanal.toml's enabled `[audiences.NAME]` tables; ConfigError when
        a table or a destination's settings are wrong (secrets resolved now)."""
        audiences = {n: a for n, a in check_audiences(config).items() if a.enabled}
        destinations = {}
        try:
            for name, settings in audiences.items():
                destinations[name] = build_destination(settings)
        except BaseException:
            for destination in destinations.values():
                destination.close()
            raise
        return cls(db, clock, audiences, destinations)

    def run_once(self) -> int:
        """Move the first due audience a few batches on; return 1 when one was, else 0."""
        if not self.audiences:
            return 0
        if self._conn is None:
            self._conn = self.db.connect()
            widen_cache(self._conn, 64)  # a round reads profiles and rows all over the file
        now = int(self.clock.now() * 1000)
        for name, settings in sorted(self.audiences.items()):
            reason = due_reason(syncs.sync_state(self._conn, name), now)
            if reason is None:
                continue
            sync = AudienceSync(self._conn, settings, self.destinations[name], self.clock,
                                owner=self.owner)
            try:
                outcome = sync.step(reason, self.batches_per_call)
            except AudienceBusy as exc:
                log.info("%s", exc)
                continue
            if outcome.state in ("done", "more"):
                return 1
        return 0

    def close(self) -> None:
        """Close the worker's connection and the destinations' connections."""
        for destination in self.destinations.values():
            destination.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
