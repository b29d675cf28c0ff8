"""History is not now: which trigger events may start a run, by their time.

An event's time is its `timestamp` as ingest stored it (already corrected by
`sentAt`); a time in the future counts as the time it was received. An event starts a
run only when, at receipt, it was at most its trigger's `max_age` old (default 1d),
and its time is not earlier than when the journey was first enabled, less that same
grace. So backfills, replays, late SDK spools and events the processor catches up on
after a journey was added never act as if they had just happened, while Kanal's own
events (segment changes, a product back in stock) are stamped when they happen and
pass.

`kanal import` stores history: its rows never start runs, unless it was run with
`--trigger`, which marks its rows as meant to act now (their receipt is their time).
Waits and goals keep counting from receipt; only entering is gated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..profiles.importer import IMPORT_KEY_KIND, triggers_journeys
from ..store.events import StoredEvent
from .entry import DEFAULT_MAX_AGE_MS

IMPORTED = "imported"
TOO_OLD = "too_old"
BEFORE_ENABLED = "before_enabled"
HISTORY_CODES = (IMPORTED, TOO_OLD, BEFORE_ENABLED)
"""The refusals of history (the ones `kanal serve` reports at start)."""


class Refusal(NamedTuple):
    """Why a trigger event started no run: a machine code and what it refers to."""

    code: str
    detail: Mapping[str, Any] = {}


def event_time(event: StoredEvent) -> int:
    """When an event happened (ms), as far as starting a run goes.

    The stored timestamp (sentAt-corrected), capped at receipt; an import run with
    `--trigger` happened when it was imported.
    """
    if event.key_kind == IMPORT_KEY_KIND and triggers_journeys(event.body):
        return event.received_at
    return min(event.timestamp, event.received_at)


def max_age_ms(trigger: Mapping[str, Any]) -> int:
    """A trigger's max_age in ms (the default for triggers compiled without one)."""
    return int(trigger.get("max_age_ms") or DEFAULT_MAX_AGE_MS)


def history_refusal(event: StoredEvent, trigger: Mapping[str, Any],
                    first_enabled: int | None) -> Refusal | None:
    """Why this event may not start a run of a journey by its time, or None."""
    if event.key_kind == IMPORT_KEY_KIND and not triggers_journeys(event.body):
        return Refusal(IMPORTED)
    at = event_time(event)
    grace = max_age_ms(trigger)
    age = event.received_at - at
    if age > grace:
        return Refusal(TOO_OLD, {"age_ms": age, "max_age_ms": grace, "event_time": at})
    if first_enabled is not None and at < first_enabled - grace:
        return Refusal(BEFORE_ENABLED, {"first_enabled": first_enabled,
                                        "max_age_ms": grace, "event_time": at})
    return None
