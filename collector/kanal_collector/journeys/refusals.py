"""Why a person's trigger event started no run, for `kanal journeys why`.

The same checks as live, in the same order, recomputed from what is stored: the
journey's versions, whether the event was history (imported, too old for the
trigger's max_age, from before the journey was first enabled: gate.py), an exclusion
(the person was in a run of an excluded journey or group), and the entry rules (once,
once_per, dedupe, one active run at a time) replayed against the person's runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ..store import explain as store
from ..store import journeys as journey_store
from ..store.connection import Connection
from ..store.events import StoredEvent
from .evaluator import properties
from .gate import BEFORE_ENABLED, IMPORTED, TOO_OLD, history_refusal
from .model import Journey
from .versions import Versions
from .wording import duration
from .wording import time_of as _time
from .wording import when_text as _when


@dataclass(frozen=True)
class _Facts:
    """What the reasons are recomputed from, for one person and journey."""

    journey: str
    runs: list[dict[str, Any]]
    defs: list[tuple[int, int, Journey | None]]
    state: tuple[int, bool, int]
    first_enabled: int | None
    others: list[dict[str, Any]]
    """The person's runs of other journeys (for exclusions)."""
    groups: dict[str, str]
    """The group of every journey that has one (its current version)."""
    tz: ZoneInfo | None


def _trigger_names(versions: list[Journey]) -> list[str]:
    names: set[str] = set()
    for journey in versions:
        names |= journey.trigger_events()
    return sorted(names)


def not_entered(conn: Connection, pid: int, journey: str,
                runs: list[dict[str, Any]], versions: Versions,
                state: tuple[int, bool, int], tz: ZoneInfo | None) -> list[dict[str, Any]]:
    """The person's trigger events that started no run, each with the reason."""
    loaded = store.journey_loaded_at(conn, journey)
    defs = [(v, created, versions.get(v)) for v, created in loaded]
    names = _trigger_names([d for _, _, d in defs if d is not None])
    started = {int(r["trigger_event"]) for r in runs if r["trigger_event"] is not None}
    groups: dict[str, str] = {}
    for name, version, _ in journey_store.current(conn):
        found = versions.get(version) if name == journey else Versions(conn, name).get(version)
        if found is not None and found.group:
            groups[name] = found.group
    facts = _Facts(journey, runs, defs, state,
                   journey_store.first_enabled(conn).get(journey),
                   [r for r in store.person_runs_all(conn, pid) if r["journey"] != journey],
                   groups, tz)
    out = []
    for event in store.person_events(conn, pid, names):
        if event.id in started:
            continue
        reason = _why_not(event, facts)
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


def _active_at(run: Mapping[str, Any], event: StoredEvent) -> bool:
    at = event.received_at
    return _began_before(run, event) and (run["ended_at"] is None or int(run["ended_at"]) > at)


def _no_match(definition: Journey, props: Mapping[str, Any]) -> dict[str, Any]:
    trigger = definition.trigger
    if "schedule" in trigger:
        return {"code": "no_match", "text": "the journey is started by a schedule"}
    segments = [t["segment"] for t in definition.triggers if "segment" in t]
    if segments and len(segments) == len(definition.triggers):
        return {"code": "no_match",
                "text": f"it was for segment {props.get('segment')!r}, not "
                        + " or ".join(repr(s) for s in segments)}
    wheres = [dict(t["where"]) for t in definition.triggers if t.get("where")]
    return {"code": "no_match",
            "text": "it didn't match the trigger"
                    + (f" (where {' or '.join(map(str, wheres))})" if wheres else "")}


def _history(event: StoredEvent, trigger: Mapping[str, Any],
             facts: _Facts) -> dict[str, Any] | None:
    refusal = history_refusal(event, trigger, facts.first_enabled)
    if refusal is None:
        return None
    tz = facts.tz
    detail = refusal.detail
    if refusal.code == IMPORTED:
        return {"code": IMPORTED,
                "text": "it was imported (`kanal import`): imported rows are history and "
                        "start no journey unless imported with --trigger"}
    when = _when(_time(int(detail["event_time"]), tz), tz)
    grace = duration(int(detail["max_age_ms"]))
    if refusal.code == TOO_OLD:
        return {"code": TOO_OLD, "ageMs": detail["age_ms"],
                "maxAgeMs": detail["max_age_ms"],
                "text": f"it was too old to start a run: it happened {when}, "
                        f"{duration(int(detail['age_ms']))} before Kanal received it "
                        f"(the trigger's max_age is {grace})"}
    enabled = _when(_time(int(detail["first_enabled"]), tz), tz)
    return {"code": BEFORE_ENABLED,
            "text": f"it happened {when}, before the journey was first enabled ({enabled}) "
                    f"less the trigger's max_age of {grace}"}


def _why_not(event: StoredEvent, facts: _Facts) -> dict[str, Any]:
    tz = facts.tz
    at = event.received_at
    in_force = [(v, d) for v, created, d in facts.defs if created <= at]
    if not in_force:
        first = facts.defs[0][1] if facts.defs else None
        return {"code": "before_journey",
                "text": f"it came before the journey was loaded (first version at "
                        f"{_when(_time(first, tz), tz)})"}
    version, definition = in_force[-1]
    if definition is None:
        return {"code": "unknown", "text": f"version {version} can't be read"}
    props = properties(event.body)
    if props.get("bot") is True:
        return {"code": "bot", "text": "the event was flagged as a bot (properties.bot)"}
    trigger = definition.matching_trigger(event.event, event.body)
    if trigger is None:
        return _no_match(definition, props)
    current, enabled, updated_at = facts.state
    if not enabled and at >= updated_at:
        return {"code": "disabled",
                "text": f"the journey was disabled (since {_when(_time(updated_at, tz), tz)})"}
    history = _history(event, trigger, facts)
    if history is not None:
        return history
    excluded = _excluded(event, definition, facts)
    if excluded is not None:
        return excluded
    return _entry_rules(event, definition, props, facts)


def _excluded(event: StoredEvent, definition: Journey,
              facts: _Facts) -> dict[str, Any] | None:
    names = set(definition.exclude_journeys)
    names |= {n for n, g in facts.groups.items() if g in definition.exclude_groups}
    names.discard(facts.journey)
    for run in facts.others:
        if run["journey"] in names and _active_at(run, event):
            group = facts.groups.get(run["journey"])
            why = (f"journey {run['journey']!r}" if run["journey"] in
                   definition.exclude_journeys else f"group {group!r} (journey "
                   f"{run['journey']!r})")
            return {"code": "excluded", "runId": run["id"], "journey": run["journey"],
                    "text": f"the person was in run #{run['id']} of {run['journey']} "
                            f"(entered {_when(_time(run['entered_at'], facts.tz), facts.tz)}),"
                            f" and this journey does not start during {why} (exclude)"}
    return None


def _entry_rules(event: StoredEvent, definition: Journey, props: Mapping[str, Any],
                 facts: _Facts) -> dict[str, Any]:
    tz = facts.tz
    at = event.received_at
    entry = definition.entry
    key = entry.get("dedupe")
    prior = [r for r in facts.runs if _began_before(r, event)]
    active = [r for r in prior if r["ended_at"] is None or int(r["ended_at"]) > at]
    if active and not key:
        r = active[-1]
        return {"code": "already_active", "runId": r["id"],
                "text": f"run #{r['id']} (entered {_when(_time(r['entered_at'], tz), tz)}) "
                        "was still going: one run of a journey per person at a time (a "
                        "journey with a dedupe key has one run per key value)"}
    rule = entry.get("rule", "once")
    if rule == "once" and prior and not key:
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
    if key:
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
