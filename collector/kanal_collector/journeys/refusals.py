"""Why a person's trigger event started no run, for `kanal journeys why`.

The entry rules (once, once_per, dedupe, one active run at a time) are replayed
against the person's runs, from what is stored, to say why not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from ..store import explain as store
from ..store.events import StoredEvent
from .evaluator import properties
from .model import Journey
from .versions import Versions
from .wording import duration
from .wording import time_of as _time
from .wording import when_text as _when


def _trigger_names(versions: list[Journey]) -> list[str]:
    names: set[str] = set()
    for journey in versions:
        if "event" in journey.trigger:
            names.add(str(journey.trigger["event"]))
        elif "segment" in journey.trigger:
            names.add("Segment Entered")
    return sorted(names)


def not_entered(conn: sqlite3.Connection, pid: int, journey: str,
                 runs: list[dict[str, Any]], versions: Versions,
                 state: tuple[int, bool, int], tz: ZoneInfo | None) -> list[dict[str, Any]]:
    """The person's trigger events that started no run, each with the reason."""
    loaded = store.journey_loaded_at(conn, journey)
    defs = [(v, created, versions.get(v)) for v, created in loaded]
    names = _trigger_names([d for _, _, d in defs if d is not None])
    started = {int(r["trigger_event"]) for r in runs if r["trigger_event"] is not None}
    out = []
    for event in store.person_events(conn, pid, names):
        if event.id in started:
            continue
        reason = _why_not(event, runs, defs, state, tz)
        out.append({"eventId": event.id, "event": event.event,
                    "at": _time(event.received_at, tz), **reason})
    return out


def _began_before(run: Mapping[str, Any], event: StoredEvent) -> bool:
    """Whether `run` had started when `event` was processed. Events of one batch share
    their received time, so at the same millisecond the event order decides: a run
    started by a later event (a higher id) came after this one."""
    entered = int(run["entered_at"])
    if entered != event.received_at or run["trigger_event"] is None:
        return entered <= event.received_at
    return int(run["trigger_event"]) < event.id


def _why_not(event: StoredEvent, runs: list[dict[str, Any]],
             defs: list[tuple[int, int, Journey | None]], state: tuple[int, bool, int],
             tz: ZoneInfo | None) -> dict[str, Any]:
    at = event.received_at
    in_force = [(v, d) for v, created, d in defs if created <= at]
    if not in_force:
        first = defs[0][1] if defs else None
        return {"code": "before_journey",
                "text": f"it came before the journey was loaded (first version at "
                        f"{_when(_time(first, tz), tz)})"}
    version, definition = in_force[-1]
    if definition is None:
        return {"code": "unknown", "text": f"version {version} can't be read"}
    props = properties(event.body)
    if props.get("bot") is True:
        return {"code": "bot", "text": "the event was flagged as a bot (properties.bot)"}
    if not definition.trigger_matches(event.event, event.body):
        trigger = definition.trigger
        if "segment" in trigger:
            return {"code": "no_match",
                    "text": f"it was for segment {props.get('segment')!r}, "
                            f"not {trigger['segment']!r}"}
        if "schedule" in trigger:
            return {"code": "no_match", "text": "the journey is started by a schedule"}
        where = trigger.get("where")
        return {"code": "no_match",
                "text": "it didn't match the trigger"
                        + (f" (where {dict(where)})" if where else f" ({trigger})")}
    current, enabled, updated_at = state
    if not enabled and at >= updated_at:
        return {"code": "disabled",
                "text": f"the journey was disabled (since {_when(_time(updated_at, tz), tz)})"}
    prior = [r for r in runs if _began_before(r, event)]
    active = [r for r in prior if r["ended_at"] is None or int(r["ended_at"]) > at]
    if active:
        r = active[-1]
        return {"code": "already_active", "runId": r["id"],
                "text": f"run #{r['id']} (entered {_when(_time(r['entered_at'], tz), tz)}) "
                        "was still going: one run of a journey per person at a time"}
    entry = definition.entry
    rule = entry.get("rule", "once")
    if rule == "once" and prior:
        earliest = prior[0]
        began = _when(_time(earliest["entered_at"], tz), tz)
        return {"code": "once", "runId": earliest["id"],
                "text": f"entry rule once: the person already went through run "
                        f"#{earliest['id']} (entered {began})"}
    if rule == "once_per" and prior:
        r = prior[-1]
        period = int(entry.get("period_ms") or 0)
        if at - int(r["entered_at"]) < period:
            again = int(r["entered_at"]) + period
            return {"code": "once_per", "runId": r["id"],
                    "text": f"entry rule once_per {duration(period)}: run #{r['id']} entered "
                            f"{_when(_time(r['entered_at'], tz), tz)}; the next entry was "
                            f"possible from {_when(_time(again, tz), tz)}"}
    if entry.get("dedupe"):
        key = str(entry["dedupe"])
        value = props.get(key)
        if value is None or isinstance(value, dict | list):
            return {"code": "no_dedupe_key",
                    "text": f"the event has no usable {key!r} property (the dedupe key)"}
        used = [r for r in prior if r["dedupe"] == str(value)]
        if used:
            return {"code": "deduplicated", "runId": used[0]["id"], "key": key,
                    "value": str(value),
                    "text": f"deduplicated: {key} = {str(value)!r} was already used by run "
                            f"#{used[0]['id']}"}
    return {"code": "unknown",
            "text": "no reason found in the runs and the log (was the processor behind, "
                    "or the journey changed since?)"}

