"""A sync round of one audience: decide (plan.py), then send batches until none waits.

Per-row state makes it safe to stop anywhere. The decisions are written in short
transactions (ingest never waits long for the write lock); a batch is read, sent, and
its rows acknowledged in one transaction after the destination answered, so a crash
between the two sends that one batch again (adds and removes are idempotent at the
platforms) and loses nothing. Removals go before adds (a person whose email changed
leaves with the old row before the new one is added).

A refused batch stops the round: TransientError (a timeout, 429, 5xx, a rate limit)
and PermanentError (credentials, access) both wait — the platform's Retry-After, else
30 s doubling per failure up to 6 h — and the round goes on where it stopped. A row the
platform refuses within an accepted batch (a partial failure) is `rejected` if it was
an add; a refused removal is tried again later, never dropped.

One process syncs an audience at a time: the lease `audience:NAME` (store/leases.py),
renewed after every batch; a holder that died on this machine is taken over at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from ..clock import Clock
from ..store import audience_syncs as syncs
from ..store import audiences as store
from ..store import leases
from ..store import segments as segment_store
from ..store.audiences import ADDING, REMOVING
from ..store.connection import Connection
from ..store.db import transaction
from ..workers import describe_owner
from .destination import ADD, REMOVE, BatchResult, Destination
from .errors import AudienceBusy, DestinationError, PermanentError, TransientError
from .plan import NO_CONSENT, NOTHING_TO_MATCH, Plan, identifiers_key, make_plan
from .settings import AudienceSettings

log = logging.getLogger("kanal.audiences")

LEASE_SECONDS = 300.0
BACKOFF_BASE = 30.0
BACKOFF_MAX = 6 * 3600.0
REFUSED_RETRY_MS = 3_600_000
"""A removal the platform refused within an accepted batch is tried again an hour later."""
_WRITE_CHUNK = 2000
_KEEP_RUNS = 500
_ACTIONS = ((REMOVING, REMOVE), (ADDING, ADD))

Progress = Callable[[str, int, BatchResult], None]
"""Told after each batch: the action, how many rows, and what the destination said."""


def backoff(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row: 30 s doubling, ≤ 6 h."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures - 1))


def new_owner() -> str:
    """A lease owner name for this process (`host:pid:nonce`, as the workers' lease)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_here(owner: str) -> bool:
    """True when the lease owner was a process of this machine that no longer runs."""
    parts = owner.split(":")
    if len(parts) < 3 or ":".join(parts[:-2]) != socket.gethostname() \
            or not parts[-2].isdigit():
        return False
    pid = parts[-2]
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_lease(conn: Connection, audience: str, owner: str, now: float) -> None:
    """Hold the audience's lease (renewing it); AudienceBusy naming who holds it."""
    name = f"audience:{audience}"
    if leases.acquire(conn, name, owner, now, LEASE_SECONDS):
        return
    found = leases.holder(conn, name)
    if found is not None and _dead_here(found[0]):
        leases.release(conn, name, found[0])  # killed (kill -9, a crash): take over now
        if leases.acquire(conn, name, owner, now, LEASE_SECONDS):
            return
    who = describe_owner(found[0]) if found else "another process"
    raise AudienceBusy(f"audience {audience!r} is being synced by {who}; try again when "
                       "it is done")


def release_lease(conn: Connection, audience: str, owner: str) -> None:
    """Give the audience's lease up."""
    leases.release(conn, f"audience:{audience}", owner)


@dataclass
class Outcome:
    """Where a sync step left the round."""

    state: str
    """done (nothing waits), more (batches left), waiting (a retry is due later) or
    failed (refused: waits like a retry)."""
    run_id: int | None = None
    error: str | None = None
    retry_at: int | None = None
    batches: int = 0


class AudienceSync:
    """Syncs one audience on one connection (the worker's, or a command's)."""

    def __init__(self, conn: Connection, settings: AudienceSettings,
                 destination: Destination, clock: Clock, *, owner: str | None = None,
                 progress: Progress | None = None) -> None:
        self.conn = conn
        self.settings = settings
        self.destination = destination
        self.clock = clock
        self.owner = owner or new_owner()
        self.progress = progress

    @property
    def name(self) -> str:
        """The audience's name."""
        return self.settings.name

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    # -- a round ---------------------------------------------------------------------------

    def step(self, reason: str, max_batches: int | None = None) -> Outcome:
        """Open a round when none is open (decide and write who enters and leaves), then
        send up to `max_batches` batches (all, without a limit)."""
        take_lease(self.conn, self.name, self.owner, self.clock.now())
        try:
            seen = syncs.sync_state(self.conn, self.name)  # before deciding: see open_round
            run_id = seen["run_id"]
            if run_id is None:
                problem = self._problem()
                if problem is not None:
                    run_id = self._open_failed(reason, problem)
                    return self._failed(run_id, PermanentError(problem))
                run_id = self.open_round(make_plan(self.conn, self.settings,
                                                   self.destination), reason, seen)
            return self._send(int(run_id), max_batches)
        finally:
            release_lease(self.conn, self.name, self.owner)

    def _problem(self) -> str | None:
        """Why no round may start: the rows were made for another destination type
        (they can't be removed there), or the segment doesn't exist."""
        told = syncs.sync_state(self.conn, self.name)["destination"]
        if told is not None and told != self.settings.destination:
            return (f"audience {self.name!r} was synced to a {told} destination; its rows "
                    f"can't be sent to {self.settings.destination}: give the new "
                    "destination another audience name (or put the old one back to "
                    "remove everyone there first)")
        segment = self.settings.segment
        if segment is None:
            return None
        known = [n for n, _, _ in segment_store.segment_definitions(self.conn)]
        if segment in known:
            return None
        # An unknown segment would have no members: everyone would be removed. Refuse.
        return (f"segment {segment!r} does not exist (segments: {', '.join(known) or 'none'}"
                "; `kanal segments apply FILE`): nothing was changed")

    def open_round(self, plan: Plan, reason: str,
                   seen: Mapping[str, Any] | None = None) -> int:
        """Write a round's decisions in short transactions; then open its run. `seen` is
        the audience's state read before the decisions: the journey changes and the
        request it had are dealt with (flags set again meanwhile stay set)."""
        now = self._now()
        for start in range(0, len(plan.changes), _WRITE_CHUNK):
            chunk = plan.changes[start:start + _WRITE_CHUNK]
            with transaction(self.conn) as conn:
                # Someone forgotten since the decisions were read is not added back.
                new = {c.profile_id for c in chunk if c.state == ADDING and c.profile_id}
                alive = store.existing_profiles(conn, new)
                store.apply_changes(conn, self.name, [
                    c for c in chunk if c.state != ADDING or c.profile_id in alive], now)
        with transaction(self.conn) as conn:
            store.set_skips(conn, self.name, plan.skips)
            run_id = syncs.start_run(conn, self.name, reason, now)
            syncs.update_run(conn, run_id, skipped_consent=plan.skipped(NO_CONSENT),
                             skipped_identifiers=plan.skipped(NOTHING_TO_MATCH))
            syncs.update_sync(conn, self.name, mark=plan.mark, run_id=run_id,
                              destination=self.settings.destination,
                              identifiers=identifiers_key(self.settings))
            if seen is not None:
                syncs.clear_flags(conn, self.name, dirty=seen["dirty_at"],
                                  requested=seen["requested_at"])
        return run_id

    def _open_failed(self, reason: str, problem: str) -> int:
        with transaction(self.conn) as conn:
            run_id = syncs.start_run(conn, self.name, reason, self._now())
            syncs.update_run(conn, run_id, error=problem, finished_at=self._now())
            syncs.update_sync(conn, self.name, requested_at=None)
        return run_id

    def _send(self, run_id: int, max_batches: int | None) -> Outcome:
        batches = 0
        while max_batches is None or batches < max_batches:
            found = self._next_batch()
            if found is None:
                self._finish(run_id)
                return Outcome("done", run_id, batches=batches)
            state, action, rows = found
            try:
                result = self.destination.send(action, [json.loads(p) for _, p in rows])
            except DestinationError as exc:
                return self._failed(run_id, exc)
            except Exception as exc:  # a plugin's bug: visible, retried like a failure
                log.exception("audience %s: destination %s failed", self.name,
                              self.destination.name)
                return self._failed(run_id, TransientError(f"{type(exc).__name__}: {exc}"))
            self._acknowledge(run_id, state, rows, result)
            batches += 1
            take_lease(self.conn, self.name, self.owner, self.clock.now())
            if self.progress is not None:
                self.progress(action, len(rows), result)
        return Outcome("more", run_id, batches=batches)

    def _next_batch(self) -> tuple[str, str, list[tuple[str, str]]] | None:
        """(state, action, rows) of the next batch to send: removals first."""
        now = self._now()
        for state, action in _ACTIONS:
            rows = store.pending(self.conn, self.name, state, self.destination.batch_size,
                                 now)
            if rows:
                return state, action, rows
        return None

    def _acknowledge(self, run_id: int, state: str, rows: list[tuple[str, str]],
                     result: BatchResult) -> None:
        now = self._now()
        refused = {rows[i][0]: why for i, why in result.rejected.items()
                   if 0 <= i < len(rows)}
        taken = [key for key, _ in rows if key not in refused]
        with transaction(self.conn) as conn:
            store.acknowledge(conn, self.name, state, taken, now)
            store.reject(conn, self.name, state, refused, now,
                         retry_at=now + REFUSED_RETRY_MS)
            counter = "added" if state == ADDING else "removed"
            fields = {"note": result.note} if result.note else {}
            syncs.update_run(conn, run_id, add={counter: len(taken),
                                                "rejected": len(refused), "batches": 1},
                             **fields)
            syncs.update_sync(conn, self.name, failures=0, retry_at=None)

    def _failed(self, run_id: int, exc: DestinationError) -> Outcome:
        now = self._now()
        failures = int(syncs.sync_state(self.conn, self.name)["failures"] or 0) + 1
        wait = backoff(failures)
        told = getattr(exc, "retry_after", None)
        if isinstance(told, int | float) and told > wait:
            wait = float(told)
        retry_at = now + int(wait * 1000)
        message = str(exc)
        with transaction(self.conn) as conn:
            syncs.update_run(conn, run_id, error=message[:1000])
            syncs.update_sync(conn, self.name, failures=failures, retry_at=retry_at,
                              last_error=message[:1000], error_at=now)
        log.warning("audience %s: %s (trying again in %.0f s)", self.name, message, wait)
        state = "waiting" if isinstance(exc, TransientError) else "failed"
        return Outcome(state, run_id, error=message, retry_at=retry_at)

    def _finish(self, run_id: int) -> None:
        now = self._now()
        with transaction(self.conn) as conn:
            later = store.next_retry(conn, self.name)
            next_at = now + self.settings.every_ms
            syncs.update_run(conn, run_id, finished_at=now)
            syncs.update_sync(conn, self.name, run_id=None, synced_at=now,
                              next_at=min(next_at, later) if later else next_at,
                              failures=0, retry_at=None, last_error=None, error_at=None)
            syncs.prune_runs(conn, self.name, _KEEP_RUNS)


def dry_run(conn: Connection, settings: AudienceSettings, destination: Destination,
            out: TextIO) -> tuple[int, int]:
    """Write what a sync would send now, one JSON line per batch (its requests, hashed
    identifiers only, credentials left out); returns (rows to add, rows to remove).
    Nothing is written to the database and nothing is sent."""
    plan = make_plan(conn, settings, destination)
    waiting = {k: (s, p) for k, s, p in store.waiting(conn, settings.name)}
    missing = [c.row_key for c in plan.changes if c.payload is None and c.state in
               (ADDING, REMOVING) and c.row_key not in waiting]
    known = store.payloads_of(conn, settings.name, missing)
    for change in plan.changes:
        if change.state in (ADDING, REMOVING):
            payload = change.payload or (waiting[change.row_key][1]
                                         if change.row_key in waiting
                                         else known[change.row_key])
            waiting[change.row_key] = (change.state, payload)
        else:
            waiting.pop(change.row_key, None)
    totals = []
    for state, action in _ACTIONS:
        rows = [json.loads(p) for _, (s, p) in sorted(waiting.items()) if s == state]
        size = destination.batch_size
        for number, start in enumerate(range(0, len(rows), size), start=1):
            batch = rows[start:start + size]
            out.write(json.dumps({
                "audience": settings.name, "destination": destination.name,
                "action": action, "batch": number, "rows": len(batch),
                "requests": [r.as_json() for r in destination.requests(action, batch)],
            }, ensure_ascii=False, sort_keys=True) + "\n")
        totals.append(len(rows))
    return totals[1], totals[0]
