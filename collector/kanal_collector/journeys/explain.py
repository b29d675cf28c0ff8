"""`kanal journeys why`: what happened to one person in one journey, and why.

Everything is recomputed from what is already stored — the runs, their log
(journey_log), the outbox and its log, and the person's events — so answering costs
the hot path nothing. For each run (newest first) it walks the run's version of the
journey step by step, pairing each step with what the log says happened there (a
wait and until when, a condition's result, a split's arm, a send and its outbox
row), and says in plain words why each message was sent, deferred or skipped. For
trigger events that started no run it replays the entry rules (once, once_per,
dedupe, one active run at a time) against the person's runs to say why not.

    explain(conn, "alice@example.com", "abandoned_cart", now_ms=…) -> dict   (JSON)
    render(report) -> str                                                     (text)

    wording.py   times, durations and reasons in words
    walk.py      one run step by step, and each send's outbox row
    refusals.py  why a trigger event started no run
    why_text.py  the report as text
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..profiles.state import computed
from ..profiles.views import lookup
from ..store import explain as store
from ..store import identities as identity_store
from ..store import journeys as journey_store
from ..store import profiles as profile_store
from ..store.connection import Connection
from .errors import WhyError
from .model import Journey
from .refusals import not_entered
from .versions import Versions
from .walk import END_STATES, run_report, send_report
from .why_text import render
from .wording import duration, reason_words
from .wording import time_of as _time
from .wording import zone_of as _zone

__all__ = ["END_STATES", "WhyError", "duration", "explain", "reason_words", "render",
           "resolve_person", "send_report"]


# -- the person -------------------------------------------------------------------------

def resolve_person(conn: Connection, user: str) -> int:
    """The current profile of a userId, email, phone, anonymousId or `profile:ID`."""
    value = user.strip()
    if value.startswith("profile:"):
        number = value[len("profile:"):].strip()
        if number.isdigit():
            pid = int(number)
            if profile_store.profile_row(conn, pid) is not None:
                return pid
            moved = profile_store.merged_into(conn, pid)
            if moved is not None and profile_store.profile_row(conn, moved) is not None:
                return moved
        raise WhyError(f"no profile {value!r}")
    found = lookup(conn, value) if value else None
    if found is None:
        raise WhyError(f"no person has the identity {user!r} (a userId, email, phone, "
                       "anonymousId or profile:ID)")
    return found


# -- the report -------------------------------------------------------------------------

def explain(conn: Connection, user: str, journey: str, *,
            now_ms: int) -> dict[str, Any]:
    """Everything `kanal journeys why USER JOURNEY` shows, as a JSON-able dict."""
    state = store.journey_state(conn, journey)
    if state is None:
        known = [n for n, _, _ in journey_store.current(conn)]
        raise WhyError(f"no journey named {journey!r}"
                       + (f" (known: {', '.join(known)})" if known else
                          " (none is loaded: `kanal journeys reload`)"))
    pid = resolve_person(conn, user)
    states = profile_store.load_states(conn, [pid])
    comp = computed(states[pid]) if pid in states else {}
    tz = _zone(comp.get("timezone"))
    versions = Versions(conn, journey)
    current_version, enabled, updated_at = state
    current = versions.get(current_version)
    runs = store.person_runs(conn, journey, pid)
    report: dict[str, Any] = {
        "journey": {"name": journey, "version": current_version, "enabled": enabled,
                    "updatedAt": _time(updated_at, tz),
                    "trigger": dict(current.trigger) if current else None,
                    "triggers": [dict(t) for t in current.triggers] if current else None,
                    "entry": dict(current.entry) if current else None},
        "person": {"query": user, "profileId": pid,
                   "identities": [{"kind": k, "value": v} for k, v in
                                  identity_store.profile_identities(conn, pid)],
                   "timezone": tz.key if tz else None},
        "runs": [run_report(conn, journey, run, versions.get(int(run["version"])), tz, now_ms)
                 for run in reversed(runs)],
    }
    report["notEntered"] = not_entered(conn, pid, journey, runs, versions, state, tz)
    report["summary"] = _summary(report, current)
    return report


def _summary(report: Mapping[str, Any], current: Journey | None) -> str:
    runs = report["runs"]
    journey = report["journey"]
    if runs:
        last = runs[0]
        return (f"{len(runs)} run(s); the latest, #{last['id']}, "
                f"{last['end']['text'] if last['end'] else last['state']}")
    missing = report["notEntered"]
    if missing:
        return f"no run: {missing[-1]['text']}"
    if current is None:
        return "no run, and the journey's current version can't be read"
    events = [str(t["event"]) for t in current.triggers if "event" in t]
    segments = [repr(t["segment"]) for t in current.triggers if "segment" in t]
    if events or segments:
        text = "no run: the person never " + " nor ".join(
            ([f"sent {' or '.join(events)}"] if events else [])
            + ([f"entered segment {' or '.join(segments)}"] if segments else []))
    else:
        text = ("no run: the journey starts on a schedule, and the person matched its "
                "audience at none of its times")
    if not journey["enabled"]:
        text += " (and the journey is disabled)"
    return text
