"""The timer worker: due timers, webhook calls, scheduled journeys, and file reloads.

A timer fires on the injected clock, in a transaction with everything its step does;
the timer row is deleted in that same transaction, so a crash either fires it fully or
not at all. Timers overdue after a restart fire at once (or end their run as `expired`
when the step has a `ttl` and they are later than that): never silently skipped.
A timer only fires once the processor has applied every event received before it was
due, so "wait up to 1 hour for Order Completed" sees an order that came in at 59 min
even when the processor is behind.

Several nodes. On PostgreSQL every `kanal serve` node runs a timer worker. Due timers
are locked as they are fired (FOR UPDATE SKIP LOCKED) in a transaction that also holds
the writer lock, as the processor's do, so a person's timers and events are applied one
at a time whichever node fires them. A webhook call is claimed first (its timer pushed
a little past the call's timeout, in a claim transaction): no other node makes the same
call meanwhile, and if the node that claimed it dies, the timer is due again and
another node calls (with the same Idempotency-Key). A schedule's chunk is claimed the
same way, so two nodes never enter one chunk of people twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..channels.netguard import guarded_session
from ..clock import Clock
from ..filestamp import Stamp, files_stamp
from ..profiles.segments import ProfileView, matches
from ..profiles.state import computed, traits_of
from ..store import journeys as store
from ..store import meta
from ..store import predict as predict_store
from ..store import profiles as profile_store
from ..store import timeline as timeline_store
from ..store.connection import DB_ERRORS, Connection
from ..store.db import Database, transaction
from .checker import References
from .definition import Journey, journey_files, load_directory
from .errors import Problem
from .evaluator import WEBHOOK_ATTEMPTS, Evaluator, outbox_key

log = logging.getLogger("kanal.journeys")

PROCESSOR_CURSOR = "processor"  # workers.PROCESSOR_CURSOR (workers imports the steps)
_SCAN_CHUNK = 500
_CALL_CLAIM_MS = 15_000
"""How long a webhook call is claimed (longer when its `timeout` is)."""


@dataclass
class SyncResult:
    """What a reload of the journeys directory changed."""

    loaded: list[tuple[str, int, bool]] = field(default_factory=list)
    """(journey, version, new version?) of every valid file."""
    disabled: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def next_occurrence(trigger: dict[str, Any] | Any, after: int) -> int:
    """The first time of a schedule (`every`, optional UTC `at`) strictly after `after`."""
    from ..profiles.segments import duration_ms

    schedule = trigger["schedule"]
    every = duration_ms(schedule["every"], "every")
    anchor = 0
    if schedule.get("at"):
        hours, minutes = str(schedule["at"]).split(":")
        anchor = (int(hours) * 60 + int(minutes)) * 60_000
    steps = (after - anchor) // every + 1
    return anchor + steps * every


def sync(conn: Connection, directory: Path, now: int,
         references: References | None = None) -> SyncResult:
    """Store the directory's journeys as versions (a changed file is a new version).

    Runs in the caller's transaction. An invalid file keeps its journey's previous
    version running; a journey whose file is gone stops taking new runs (its runs go on).
    `references` (e.g. the configured channels) are checked too: a file naming a channel
    that isn't there is invalid.
    """
    if not directory.is_dir():
        # A missing directory (a different working directory, a typo) must not disable
        # every journey: leave the stored ones as they are.
        log.info("no journeys directory at %s yet: journey files go there (docs/journeys.md, "
                 "Journeys); journeys already loaded keep running", directory)
        return SyncResult()
    journeys, problems = load_directory(directory, references)
    result = SyncResult(problems=problems)
    broken = {Path(p.source).stem for p in problems}
    for name, journey in journeys.items():
        version = store.version_of_hash(conn, name, journey.hash)
        new = version is None
        if version is None:
            version = store.add_version(conn, name, journey.hash, journey.text,
                                        journey.source, now)
        store.set_current(conn, name, version, journey.enabled, now)
        result.loaded.append((name, version, new))
        if "schedule" in journey.trigger and journey.enabled:
            store.set_schedule(conn, name, next_occurrence(journey.trigger, now - 1))
        else:
            store.drop_schedule(conn, name)
    for name, _, enabled in store.current(conn):
        if name not in journeys and name not in broken and enabled:
            store.disable(conn, name, now)
            store.drop_schedule(conn, name)
            result.disabled.append(name)
    for problem in problems:
        log.error("journey file not loaded: %s", problem)
    return result


class TimerWorker:
    """Fires due timers, makes webhook calls, runs schedules, reloads journey files."""

    name = "journey-timers"
    shared = True
    """Runs on every node (row claims keep the nodes apart), not only the lease holder."""

    def __init__(self, db: Database, clock: Clock, *, journeys_dir: Path | None = None,
                 evaluator: Evaluator | None = None, batch_size: int = 200,
                 cursor: str = PROCESSOR_CURSOR, reload_interval: float = 2.0,
                 session: Callable[[], requests.Session] | None = None,
                 references: References | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.db = db
        self.clock = clock
        self.journeys_dir = journeys_dir
        self.evaluator = evaluator or Evaluator(clock=clock)
        self.batch_size = batch_size
        self.cursor = cursor
        self.reload_interval = reload_interval
        self.session = session or guarded_session
        self.references = references
        self._installation: str | None = None
        self._conn: Connection | None = None
        self._stamp: tuple[tuple[str, float, int], ...] | None = None
        self._checked = 0.0
        if journeys_dir is not None:
            # Load the files before any worker starts: the processor must not apply
            # events while the journeys they trigger are still unknown.
            try:
                self.reload(force=True)
            except DB_ERRORS:
                log.exception("journey files not loaded at start; retrying in the worker")
            finally:
                self.close()  # the worker's thread opens its own

    @property
    def conn(self) -> Connection:
        """The worker's own connection."""
        if self._conn is None:
            self._conn = self.db.connect()
        return self._conn

    def run_once(self) -> int:
        """One round: reload files, fire due timers, calls and schedules; how many."""
        self.reload()
        done = self.fire_due()
        done += self.call_webhooks()
        done += self.run_schedules()
        return done

    # -- files --------------------------------------------------------------------------

    def reload(self, *, force: bool = False) -> SyncResult | None:
        """Store the journeys directory's files when they changed (checked every few s)."""
        if self.journeys_dir is None:
            return None
        if not force and time.monotonic() - self._checked < self.reload_interval:
            return None
        self._checked = time.monotonic()
        stamp = _files_stamp(self.journeys_dir)
        if not force and stamp == self._stamp:
            return None
        with transaction(self.conn) as conn:
            result = sync(conn, self.journeys_dir, int(self.clock.now() * 1000),
                          self.references)
        self._stamp = stamp
        return result

    # -- timers -------------------------------------------------------------------------

    def horizon(self, conn: Connection) -> int:
        """Fire timers due up to now, but not past events the processor hasn't applied."""
        now = int(self.clock.now() * 1000)
        pending = store.first_unprocessed_at(conn, self.cursor)
        return now if pending is None else min(now, pending - 1)

    def fire_due(self) -> int:
        """Fire up to `batch_size` due wait and timeout timers in one transaction."""
        with transaction(self.conn) as conn:
            timers = store.due_timers(conn, self.horizon(conn), self.batch_size,
                                      kinds=("wait", "timeout"), claim=True)
            now = int(self.clock.now() * 1000)
            for timer in timers:
                run = store.get_run(conn, timer.run_id)
                if run is None:
                    store.delete_timer(conn, timer.run_id)
                    continue
                self.evaluator.fire(conn, run, timer, now)
        return len(timers)

    def call_webhooks(self) -> int:
        """Make due webhook calls (outside any transaction), then move their runs on.

        A call is made at least once: a crash between the call and its commit calls
        again, with the same `Idempotency-Key` header for the receiver to drop the copy.
        """
        now = int(self.clock.now() * 1000)
        with transaction(self.conn, claim=True) as conn:
            timers = store.claim_calls(conn, now, 20, now + _CALL_CLAIM_MS)
        for timer in timers:
            run = store.get_run(self.conn, timer.run_id)
            if run is None:
                with transaction(self.conn) as conn:
                    store.delete_timer(conn, timer.run_id)
                continue
            journey = self.evaluator.journey(self.conn, run.journey, run.version)
            timeout_ms = int(float(journey.steps[timer.step].spec.get("timeout") or 10) * 1000)
            if timeout_ms + 5000 > _CALL_CLAIM_MS:  # hold the claim past a long timeout
                with transaction(self.conn, claim=True) as conn:
                    if not store.extend_call(conn, timer, now + timeout_ms + 5000):
                        continue
            error = self._call(journey, run, timer.step)
            with transaction(self.conn) as conn:
                fresh = store.get_run(conn, run.id)
                if fresh is None or fresh.timer is None or fresh.timer.step != timer.step:
                    continue
                at = int(self.clock.now() * 1000)
                if error is None:
                    store.log(conn, run.id, at, timer.step, "webhook_sent")
                elif timer.attempts + 1 < WEBHOOK_ATTEMPTS:
                    store.set_timer(conn, run.id, at + 30_000 * 2 ** timer.attempts,
                                    timer.step, "call", timer.attempts + 1)
                    store.log(conn, run.id, at, timer.step, "webhook_retry", {"error": error})
                    continue
                else:
                    store.log(conn, run.id, at, timer.step, "webhook_failed", {"error": error})
                self.evaluator.fire(conn, fresh, fresh.timer, at)
        return len(timers)

    def _webhook_key(self, journey: str, run_id: int, step_id: str) -> str:
        """`kanal-<installation>-journey:NAME:RUN:STEP`: stable for a step of a run, and
        unique per installation (run ids repeat from one database to the next)."""
        if self._installation is None:
            with transaction(self.conn) as conn:
                self._installation = meta.installation_id(conn)
        return f"kanal-{self._installation}-{outbox_key(journey, run_id, step_id)}"

    def _call(self, journey: Journey, run: store.Run, step_id: str) -> str | None:
        spec = journey.steps[step_id].spec
        body = {"journey": journey.name, "version": run.version, "run_id": run.id,
                "step": step_id, "profile_id": run.profile_id,
                "event": run.context.get("event", {}), "data": spec.get("payload", {})}
        try:
            with self.session() as session:
                response = session.post(
                    str(spec["url"]), json=body, timeout=float(spec.get("timeout") or 10),
                    allow_redirects=False,
                    headers={"Idempotency-Key": self._webhook_key(journey.name, run.id,
                                                                 step_id),
                             "User-Agent": "Kanal journeys"})
        except (requests.RequestException, ValueError) as exc:
            return str(exc)
        if response.status_code >= 300:
            return f"HTTP {response.status_code}"
        return None

    # -- schedules ----------------------------------------------------------------------

    def run_schedules(self) -> int:
        """Test one chunk of profiles against each due schedule's audience."""
        now = int(self.clock.now() * 1000)
        scanned = 0
        for name, _, _ in store.due_schedules(self.conn, now):
            with transaction(self.conn) as conn:
                # Read again under the lock: another node may have scanned this chunk.
                claimed = store.claim_schedule(conn, name, now)
                if claimed is None:
                    continue
                next_at, after = claimed
                found = [(j, v) for j, v in self.evaluator.current(conn) if j.name == name]
                if not found or "schedule" not in found[0][0].trigger:
                    store.drop_schedule(conn, name)
                    continue
                journey, version = found[0]
                ids = profile_store.profile_ids(conn, after=after, limit=_SCAN_CHUNK)
                if not ids:
                    store.schedule_progress(conn, name, next_occurrence(journey.trigger, now),
                                            0)
                    continue
                states = profile_store.load_states(conn, ids)
                audience = dict(journey.trigger["audience"])
                for pid in ids:
                    if pid in states and matches(audience, _view(conn, pid, states[pid]), now):
                        self.evaluator.enter(conn, journey, version, pid, now=now)
                store.schedule_progress(conn, name, next_at, ids[-1])
                scanned += len(ids)
        return scanned

    def close(self) -> None:
        """Close the worker's connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _view(conn: Connection, pid: int, state: dict[str, Any]) -> ProfileView:
    def events(name: str, since: int) -> Any:
        return timeline_store.profile_events_since(conn, pid, name, since)

    scores = predict_store.computed_scores(conn, [pid]).get(pid)
    return ProfileView(traits_of(state), computed(state, scores), events)


def _files_stamp(directory: Path) -> Stamp:
    return files_stamp(journey_files(directory))
