"""`kanal profiles rebuild`: recompute identities, profiles and segments from the log."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence

from ..clock import Clock, utc_iso
from ..store import leases
from ..store import profiles as store
from ..store.connection import Connection
from ..store.cursors import get_position
from ..store.db import transaction
from ..store.events import events_after
from ..store.retention import pruned_before
from ..workers import LEASE_NAME, PROCESSOR_CURSOR, Step
from .step import ProfilesStep, sweep

_LEASE_SECONDS = 60.0


class RebuildBusy(RuntimeError):
    """Another process runs the workers (a `kanal serve`), so a rebuild can't start."""


class LogPruned(RuntimeError):
    """The log was pruned (`kanal events prune`): a replay would lose people's past."""


def rebuild(conn: Connection, clock: Clock, *, batch_size: int = 2000,
            progress: Callable[[int], None] | None = None,
            also: Sequence[Step] = (), default_country: str | None = None,
            before_segments: Callable[[Connection], object] | None = None) -> int:
    """Replay the log up to the processor's cursor; return how many events were replayed.

    `also` are more processor steps whose person-keyed tables `clear_profiles` empties
    and that must be replayed with the profiles (`kanal profiles rebuild` passes the
    products step: profile ids change in a rebuild); `default_country` reads national
    phone numbers of people without one (`[profiles] default_country`).

    The workers' lease is held meanwhile, so the live processor can't interleave; ingest
    goes on. Events after the cursor are left to the processor, so the two never apply
    an event twice. Interrupted, it leaves partial profiles: run it again.

    The profiles get new ids, so their predictive scores are dropped with them;
    `before_segments` runs once the profiles are rebuilt and before segments are
    computed (`kanal profiles rebuild` recomputes the scores there: predict.rescore).
    """
    horizon = pruned_before(conn)
    if horizon is not None:
        raise LogPruned(
            f"the events received before {utc_iso(horizon / 1000)[:19]}Z were pruned "
            "(`kanal events prune`): a rebuild replays the log, and would rebuild people "
            "without what those events made them; profiles are kept as they are")
    owner = f"rebuild:{socket.gethostname()}:{os.getpid()}"
    nodes = leases.live_nodes(conn, clock.now())
    if nodes or not leases.acquire(conn, LEASE_NAME, owner, clock.now(), _LEASE_SECONDS):
        raise RebuildBusy("a `kanal serve` is running the workers on this database; "
                          "stop it (or run it with --no-workers) and rebuild again")
    try:
        steps: list[Step] = [ProfilesStep(default_country=default_country), *also]
        with transaction(conn):
            end = get_position(conn, PROCESSOR_CURSOR)
            store.clear_profiles(conn)
        position = 0
        done = 0
        while position < end:
            with transaction(conn):
                events = [e for e in events_after(conn, position, batch_size) if e.id <= end]
                if not events:
                    break
                for step in steps:
                    step.apply(conn, events)
            position = events[-1].id
            done += len(events)
            if progress is not None:
                progress(len(events))
            if not leases.acquire(conn, LEASE_NAME, owner, clock.now(), _LEASE_SECONDS):
                raise RebuildBusy("lost the workers' lease during the rebuild; run it again")
        if before_segments is not None:
            before_segments(conn)
        sweep(conn, int(clock.now() * 1000), trigger=None, only_time_dependent=False)
        return done
    finally:
        leases.release(conn, LEASE_NAME, owner)
