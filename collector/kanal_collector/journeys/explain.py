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
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..messages.eligibility import (
    BUILTIN_CHANNELS,
    NO_CONSENT,
    NO_CONTENT,
    NO_PROFILE,
    NO_RECIPIENT,
    SUPPRESSED,
    UNSUBSCRIBED,
)
from ..profiles.state import computed
from ..profiles.views import lookup
from ..store import explain as store
from ..store import identities as identity_store
from ..store import journeys as journey_store
from ..store import outbox as outbox_store
from ..store import profiles as profile_store
from ..store.connection import Connection
from ..store.events import StoredEvent
from .definition import Journey, Step, parse_journey
from .errors import JourneyError
from .evaluator import outbox_key, properties

END_STATES = ("completed", "converted", "exited", "expired")
_MAX_STEPS = 500


class WhyError(JourneyError):
    """The person or the journey `why` was asked about is unknown."""


# -- time and words ---------------------------------------------------------------------

def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _time(ms: int | None, tz: ZoneInfo | None) -> dict[str, Any] | None:
    """A time as epoch ms, UTC ISO and (with a timezone) the person's local time."""
    if ms is None:
        return None
    utc = datetime.fromtimestamp(ms / 1000, UTC)
    out: dict[str, Any] = {"ms": ms, "utc": utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if tz is not None:
        out["local"] = utc.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S%z")
    return out


def _when(value: Mapping[str, Any] | None, tz: ZoneInfo | None) -> str:
    """A time in words: `2026-01-05 09:00:00 UTC (10:00:00 Europe/Stockholm)`."""
    if value is None:
        return "-"
    utc = datetime.fromtimestamp(int(value["ms"]) / 1000, UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    if tz is not None:
        local = utc.astimezone(tz)
        same_day = local.date() == utc.date()
        text += f" ({local.strftime('%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')} {tz.key})"
    return text


def duration(ms: int) -> str:
    """A duration in the journey files' units: 90000 → `1m30s`, 86400000 → `1d`."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


def reason_words(reason: str | None, channel: str | None = None) -> str:
    """An outbox row's reason (or a dispatcher decision's) in plain words."""
    r = (reason or "").strip()
    if r.startswith("deferred:"):
        return "deferred: " + reason_words(r[len("deferred:"):], channel)
    if r == "quiet hours" or r.startswith("quiet hours"):
        return "it fell in the person's quiet hours"
    if r.startswith("frequency cap"):
        rest = r[len("frequency cap"):].lstrip(": ")
        return ("the person had already had as many messages as a frequency cap allows"
                + (f" ({rest})" if rest else ""))
    if r.startswith("daily budget"):
        rest = r[len("daily budget"):].lstrip(": ")
        return "the day's send budget was used up" + (f" ({rest})" if rest else "")
    if r == NO_PROFILE:
        return "the person's profile was gone (forgotten) when it was due"
    if r == NO_RECIPIENT:
        identity = BUILTIN_CHANNELS.get(channel or "", (None, None))[1]
        what = identity.replace("_", " ") if identity else "address"
        return f"the person had no trusted {what} for channel {channel or '?'}"
    if r == SUPPRESSED:
        return "the person is suppressed (they asked to be forgotten)"
    if r.startswith(SUPPRESSED + ":"):
        return ("the address is on the email suppression list"
                f" ({r[len(SUPPRESSED) + 1:].strip()})")
    if r.startswith("warm-up"):
        return ("the From domain's warm-up allowed no more email that day"
                f" ({r[len('warm-up'):].lstrip(': ')})")
    if r.startswith("recipient domain throttle"):
        return ("the recipient domain's throttle allowed no more email for now"
                f" ({r[len('recipient domain throttle'):].lstrip(': ')})")
    if r.startswith("sunset"):
        return ("the person stopped reading: the sunset policy sends no more marketing"
                f" email ({r[len('sunset'):].lstrip(': ')})")
    if r.startswith(("bounced", "marked as spam")):
        return r
    if r == NO_CONSENT:
        return "the person has not given, or has withdrawn, marketing consent"
    if r == UNSUBSCRIBED:
        return "the person is unsubscribed (from the channel or the message's topic)"
    if r.startswith(NO_CONTENT):
        return f"the message has no content for channel {channel or '?'}"
    if r.startswith("permanent:"):
        return "the provider refused it:" + r[len("permanent:"):]
    if r.startswith("transient:"):
        return "a temporary error, to be retried:" + r[len("transient:"):]
    return r or "no reason recorded"


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

class _Versions:
    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self._cache: dict[int, Journey | None] = {}

    def get(self, version: int) -> Journey | None:
        if version not in self._cache:
            text = journey_store.version_text(self.conn, self.name, version)
            try:
                self._cache[version] = None if text is None else parse_journey(
                    text, source=f"{self.name} v{version}", name=self.name, strict=False)
            except JourneyError:
                self._cache[version] = None
        return self._cache[version]


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
    versions = _Versions(conn, journey)
    current_version, enabled, updated_at = state
    current = versions.get(current_version)
    runs = store.person_runs(conn, journey, pid)
    report: dict[str, Any] = {
        "journey": {"name": journey, "version": current_version, "enabled": enabled,
                    "updatedAt": _time(updated_at, tz),
                    "trigger": dict(current.trigger) if current else None,
                    "entry": dict(current.entry) if current else None},
        "person": {"query": user, "profileId": pid,
                   "identities": [{"kind": k, "value": v} for k, v in
                                  identity_store.profile_identities(conn, pid)],
                   "timezone": tz.key if tz else None},
        "runs": [_run(conn, journey, run, versions.get(int(run["version"])), tz, now_ms)
                 for run in reversed(runs)],
    }
    report["notEntered"] = _not_entered(conn, pid, journey, runs, versions, state, tz)
    report["summary"] = _summary(report, current)
    return report


def _run(conn: Connection, journey: str, run: dict[str, Any],
         definition: Journey | None, tz: ZoneInfo | None, now_ms: int) -> dict[str, Any]:
    run_id = int(run["id"])
    entries = journey_store.run_log(conn, run_id)
    trigger = None
    if run["trigger_event"] is not None:
        found = store.event(conn, int(run["trigger_event"]))
        trigger = {"eventId": int(run["trigger_event"]),
                   "event": found.event if found else None,
                   "at": _time(found.received_at, tz) if found else None,
                   "properties": run["context"].get("event", {})}
    out: dict[str, Any] = {
        "id": run_id, "version": int(run["version"]), "state": run["state"],
        "enteredAt": _time(int(run["entered_at"]), tz), "trigger": trigger,
        "dedupe": run["dedupe"], "steps": [],
        "end": None, "conversion": None,
    }
    timer = store.run_timer(conn, run_id) if run["state"] == journey_store.ACTIVE else None
    if definition is None:
        out["steps"] = [_raw(e, tz) for e in entries if e["what"] != "entered"]
    else:
        out["steps"] = _walk(conn, journey, run, definition, entries, timer, tz)
    if run["state"] == journey_store.ACTIVE:
        text = f"still in the journey at step {run['step']}"
        if timer is not None:
            text += f", waiting until {_when(_time(timer['dueAt'], tz), tz)}"
            if timer["dueAt"] < now_ms - 60_000:
                text += " (overdue: is the timer worker of `kanal serve` running?)"
        out["end"] = {"state": "active", "at": None, "reason": None, "text": text}
    else:
        out["end"] = _end(run, tz)
    conversion = store.run_conversion(conn, run_id)
    if conversion is not None:
        conversion["at"] = _time(conversion["at"], tz)
        revenue = conversion["revenue"]
        conversion["text"] = (f"reached the goal ({conversion['event']}) at "
                              f"{_when(conversion['at'], tz)}"
                              + (f", revenue {revenue:g}" if revenue is not None else ""))
        if run["ended_at"] is not None and conversion["at"]["ms"] > int(run["ended_at"]):
            conversion["text"] += " — after the run had ended, within the goal's window"
        out["conversion"] = conversion
    return out


def _end(run: dict[str, Any], tz: ZoneInfo | None) -> dict[str, Any]:
    state = str(run["state"])
    reason = str(run["end_reason"] or "")
    at = _time(run["ended_at"], tz)
    if state == "completed":
        text = "completed: ran out of steps"
    elif state == "converted":
        text = f"left on the goal ({reason.removeprefix('goal ').strip() or 'goal'})"
    elif state == "expired":
        text = f"expired: a timer fired too late for its step's ttl ({reason})"
    elif reason == "holdout":
        text = "in the holdout group of a split: sent nothing more, on purpose"
    elif reason.startswith("merged:"):
        text = f"exited when two profiles were merged ({reason})"
    else:
        text = f"exited: {reason or 'exit step'}"
    return {"state": state, "at": at, "reason": reason or None,
            "text": f"{text} at {_when(at, tz)}"}


def _raw(entry: Mapping[str, Any], tz: ZoneInfo | None) -> dict[str, Any]:
    return {"step": entry["step"], "kind": None, "what": entry["what"],
            "at": _time(entry["at"], tz), "detail": entry["detail"],
            "text": f"{entry['what']} {entry['detail'] or ''}".strip()}


def _walk(conn: Connection, journey: str, run: dict[str, Any], definition: Journey,
          entries: list[dict[str, Any]], timer: dict[str, Any] | None,
          tz: ZoneInfo | None) -> list[dict[str, Any]]:
    """Pair each step the run reached with what its log says happened there."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    used: set[int] = set()
    for i, entry in enumerate(entries):
        if entry["what"] in ("entered", "goal"):
            used.add(i)
        elif entry["step"] is not None:
            by_step.setdefault(str(entry["step"]), []).append({**entry, "_i": i})
    out: list[dict[str, Any]] = []
    t = int(run["entered_at"])
    step_id = definition.first
    active = run["state"] == journey_store.ACTIVE
    for _ in range(_MAX_STEPS):
        if step_id is None or step_id not in definition.steps:
            break
        step = definition.steps[step_id]
        mine = by_step.get(step_id, [])
        for entry in mine:
            used.add(entry["_i"])
        ends = [e for e in mine if e["what"] in END_STATES]
        own = [e for e in mine if e["what"] not in END_STATES]
        waiting_here = active and run["step"] == step_id
        item, nxt, t = _step(conn, journey, int(run["id"]), step, own, t, timer,
                             waiting_here, bool(ends), tz)
        out.append(item)
        if ends or nxt is _STOP:
            break
        step_id = nxt if isinstance(nxt, str) else None
    out.extend(_raw(e, tz) for i, e in enumerate(entries) if i not in used)
    return out


class _Stop:
    """The walk ends at this step."""


_STOP = _Stop()


def _step(conn: Connection, journey: str, run_id: int, step: Step,
          entries: list[dict[str, Any]], t: int, timer: dict[str, Any] | None,
          waiting_here: bool, ended_here: bool,
          tz: ZoneInfo | None) -> tuple[dict[str, Any], str | None | _Stop, int]:
    """One step of the walk: (what to show, the next step id or _STOP, time reached)."""
    spec = step.spec
    whats = {e["what"]: e for e in entries}
    last_at = entries[-1]["at"] if entries else t
    item: dict[str, Any] = {"step": step.id, "kind": step.kind, "what": None,
                            "at": _time(t, tz), "detail": None, "text": ""}
    nxt: str | None | _Stop = step.next
    if step.kind == "wait":
        until = t + int(spec["ms"])
        item.update(what="wait", until=_time(until, tz))
        if waiting_here:
            due = timer["dueAt"] if timer else until
            item["until"] = _time(due, tz)
            item["text"] = f"waiting {duration(int(spec['ms']))}, until {_when(_time(due, tz), tz)}"
            return item, _STOP, t
        span, end = duration(int(spec["ms"])), _when(_time(until, tz), tz)
        item["text"] = (f"was waiting {span} (until {end})" if ended_here
                        else f"waited {span}, until {end}")
        return item, nxt, until
    if step.kind == "wait_until":
        what = spec.get("trait") or spec.get("computed")
        if "skipped" in whats:
            why = (whats["skipped"]["detail"] or {}).get("why", "")
            item.update(what="skipped", detail=whats["skipped"]["detail"])
            item["text"] = f"wait until {what}: not waited ({why})"
            return item, nxt, last_at
        item["what"] = "wait_until"
        if waiting_here and timer:
            item["until"] = _time(timer["dueAt"], tz)
            item["text"] = f"waiting until {what} ({_when(item['until'], tz)})"
            return item, _STOP, t
        item["text"] = f"waited until the date in {what}"
        return item, nxt, t
    if step.kind == "wait_window":
        window = whats.get("window")
        detail = (window or {}).get("detail") or {}
        zone_text = f" ({detail['timezone']})" if detail.get("timezone") else ""
        item.update(what="window", detail=detail or None)
        if window is None:
            item["text"] = "send window: nothing logged"
            return item, _STOP, t
        if detail.get("inside"):
            item["text"] = f"inside the send window{zone_text}: went on at once"
            return item, nxt, int(window["at"])
        until = int(detail.get("until") or window["at"])
        item["until"] = _time(until, tz)
        if waiting_here:
            item["text"] = (f"waiting for the send window{zone_text} until "
                            f"{_when(item['until'], tz)}")
            return item, _STOP, t
        item["text"] = (f"waited for the send window{zone_text} until "
                        f"{_when(item['until'], tz)}")
        return item, nxt, until
    if step.kind == "wait_for":
        event = spec["event"]
        due = t + int(spec["timeout_ms"])
        item["until"] = _time(due, tz)
        if "event" in whats:
            entry = whats["event"]
            item.update(what="event", at=_time(entry["at"], tz), detail=entry["detail"])
            item["text"] = (f"waited for {event}: it came at {_when(_time(entry['at'], tz), tz)}"
                            " → on_event")
            return item, step.branches.get("event"), int(entry["at"])
        if "timeout" in whats:
            entry = whats["timeout"]
            item.update(what="timeout", at=_time(entry["at"], tz))
            item["text"] = (f"waited {duration(int(spec['timeout_ms']))} for {event}: it didn't "
                            f"come; timed out at {_when(_time(entry['at'], tz), tz)} → on_timeout")
            return item, step.branches.get("timeout"), int(entry["at"])
        if waiting_here and timer:
            item["until"] = _time(timer["dueAt"], tz)
        item["what"] = "waiting" if waiting_here else "wait_for"
        item["text"] = (f"waiting for {event} until {_when(item['until'], tz)}" if waiting_here
                        else f"was waiting for {event} (until {_when(item['until'], tz)})")
        return item, _STOP, t
    if step.kind == "if":
        found = whats.get("condition")
        if found is None:
            item["text"] = "condition: no result logged"
            return item, _STOP, t
        result = bool((found["detail"] or {}).get("result"))
        item.update(what="condition", result=result, at=_time(found["at"], tz))
        item["text"] = f"condition was {'true → then' if result else 'false → else'}"
        return item, step.branches.get("then" if result else "else"), int(found["at"])
    if step.kind == "split":
        assigned = whats.get("assigned")
        if assigned is None:
            item["text"] = "split: no arm logged"
            return item, _STOP, t
        arm = str((assigned["detail"] or {}).get("arm"))
        item.update(what="assigned", arm=arm, at=_time(assigned["at"], tz))
        if arm == "holdout":
            item["text"] = "split: put in the holdout group (gets no messages from here on)"
            return item, _STOP, int(assigned["at"])
        item["text"] = f"split: assigned to arm {arm}"
        return item, step.branches.get(arm), int(assigned["at"])
    if step.kind == "send":
        return _send_step(conn, journey, run_id, step, whats, t, tz), nxt, last_at
    if step.kind == "set_trait":
        if "traits" in whats:
            detail = {k: v for k, v in (whats["traits"]["detail"] or {}).items()
                      if k != "event_id"}
            item.update(what="traits", detail=detail)
            item["text"] = "set " + ", ".join(f"{k}={v!r}" for k, v in detail.items())
        elif "traits_skipped" in whats:
            why = (whats["traits_skipped"]["detail"] or {}).get("why")
            item.update(what="traits_skipped", detail=whats["traits_skipped"]["detail"])
            item["text"] = f"traits not set: {why}"
        else:
            item["text"] = "set traits (nothing logged)"
        return item, nxt, last_at
    if step.kind == "webhook":
        url = spec.get("url")
        if "webhook_sent" in whats:
            item.update(what="webhook_sent", at=_time(whats["webhook_sent"]["at"], tz))
            item["text"] = f"called {url}"
        elif "webhook_failed" in whats:
            error = (whats["webhook_failed"]["detail"] or {}).get("error")
            item.update(what="webhook_failed", detail=whats["webhook_failed"]["detail"])
            item["text"] = f"calling {url} failed ({error}); the run went on"
        elif waiting_here:
            retry = whats.get("webhook_retry")
            item["what"] = "calling"
            item["text"] = f"calling {url}" + (
                f" (retrying after: {(retry['detail'] or {}).get('error')})" if retry else "")
            return item, _STOP, t
        return item, nxt, last_at
    if step.kind == "exit":
        item.update(what="exit")
        item["text"] = f"exit step ({spec.get('reason')})"
        return item, _STOP, t
    item["text"] = step.kind
    return item, _STOP, t


def _send_step(conn: Connection, journey: str, run_id: int, step: Step,
               whats: Mapping[str, Any], t: int, tz: ZoneInfo | None) -> dict[str, Any]:
    spec = step.spec
    item: dict[str, Any] = {"step": step.id, "kind": "send", "what": "send",
                            "at": _time(t, tz), "detail": None,
                            "message": spec["message"], "channel": spec["channel"]}
    if "send_failed" in whats:
        error = (whats["send_failed"]["detail"] or {}).get("error")
        item.update(what="send_failed", detail=whats["send_failed"]["detail"], outbox=None)
        item["text"] = f"send {spec['message']}: could not be queued ({error})"
        return item
    outbox_id = (whats.get("queued", {}).get("detail") or {}).get("outbox_id")
    row = (outbox_store.get(conn, int(outbox_id)) if outbox_id is not None
           else outbox_store.by_key(conn, outbox_key(journey, run_id, step.id)))
    if row is None:
        item["outbox"] = None
        item["text"] = (f"send {spec['message']}: its outbox row is gone "
                        "(pruned, or the person was forgotten)")
        return item
    item["outbox"] = send_report(conn, row, tz)
    item["text"] = f"send {row.message} on {row.channel}: {item['outbox']['text']}"
    return item


def send_report(conn: Connection, row: outbox_store.OutboxRow,
                tz: ZoneInfo | None) -> dict[str, Any]:
    """An outbox row, what the dispatcher decided about it, and why, in words."""
    decisions = [{"at": _time(d["at"], tz), "what": d["what"], "detail": d["detail"],
                  "text": _decision_text(d, row.channel, tz)}
                 for d in outbox_store.outbox_log(conn, row.id)]
    state = row.state
    if state == "sent":
        text = (f"sent at {_when(_time(row.sent_at, tz), tz)}"
                + (f" to {row.recipient}" if row.recipient else ""))
        deferred = [d for d in decisions if d["what"] == "deferred"]
        if deferred:
            text += f" (after being deferred {len(deferred)} time(s): {deferred[0]['text']})"
        text += "".join(f"; then {d['text']}" for d in decisions
                        if d["what"] in ("bounced", "complained"))
    elif state == "skipped":
        at_enqueue = row.attempts == 0 and row.claim_token is None
        when = "skipped when it was queued" if at_enqueue else "skipped when it was due"
        text = (f"not sent ({when} at {_when(_time(row.updated_at, tz), tz)}): "
                f"{reason_words(row.reason, row.channel)}")
    elif state == "queued":
        due = _when(_time(row.next_attempt_at, tz), tz)
        if row.reason and row.reason.startswith("deferred"):
            text = f"waiting, {reason_words(row.reason, row.channel)}; due {due}"
        elif row.reason and row.reason.startswith("transient"):
            text = f"queued again after {reason_words(row.reason, row.channel)}; due {due}"
        else:
            text = f"queued, due {due}"
    elif state == "failed":
        text = (f"failed at {_when(_time(row.updated_at, tz), tz)}: "
                f"{reason_words(row.reason, row.channel)}")
    elif state == "in_doubt":
        text = f"in doubt: {row.reason}"
    else:
        text = "being sent right now"
    return {"id": row.id, "message": row.message, "channel": row.channel,
            "candidates": row.candidates, "kind": row.kind, "state": state,
            "reason": row.reason, "recipient": row.recipient,
            "queuedAt": _time(row.created_at, tz), "dueAt": _time(row.next_attempt_at, tz),
            "sentAt": _time(row.sent_at, tz), "attempts": row.attempts,
            "decisions": decisions, "text": text}


def _decision_text(d: Mapping[str, Any], channel: str | None, tz: ZoneInfo | None) -> str:
    detail = d["detail"] if isinstance(d["detail"], dict) else {}
    reason = reason_words(detail.get("reason"), channel)
    until = detail.get("until")
    tz = _zone(detail.get("timezone")) or tz  # the zone the dispatcher decided in
    text = f"{d['what']} at {_when(_time(d['at'], tz), tz)}: {reason}"
    if until is not None:
        text += f", until {_when(_time(int(until), tz), tz)}"
    return text


# -- why no run -------------------------------------------------------------------------

def _trigger_names(versions: list[Journey]) -> list[str]:
    names: set[str] = set()
    for journey in versions:
        if "event" in journey.trigger:
            names.add(str(journey.trigger["event"]))
        elif "segment" in journey.trigger:
            names.add("Segment Entered")
    return sorted(names)


def _not_entered(conn: Connection, pid: int, journey: str,
                 runs: list[dict[str, Any]], versions: _Versions,
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
    trigger = current.trigger
    if "event" in trigger:
        text = f"no run: the person never sent {trigger['event']}"
    elif "segment" in trigger:
        text = f"no run: the person never entered segment {trigger['segment']!r}"
    else:
        text = ("no run: the journey starts on a schedule, and the person matched its "
                "audience at none of its times")
    if not journey["enabled"]:
        text += " (and the journey is disabled)"
    return text


# -- text -------------------------------------------------------------------------------

def render(report: Mapping[str, Any]) -> str:
    """The report as `kanal journeys why` prints it."""
    tz = _zone(report["person"]["timezone"])
    j = report["journey"]
    person = report["person"]
    ids = ", ".join(f"{i['kind']}={i['value']}" for i in person["identities"]) or "no ids"
    lines = [f"Journey {j['name']} (v{j['version']}, "
             f"{'enabled' if j['enabled'] else 'disabled'}) — profile {person['profileId']} "
             f"({ids}{', timezone ' + person['timezone'] if person['timezone'] else ''})",
             report["summary"]]
    for run in report["runs"]:
        lines.append("")
        trig = run["trigger"]
        how = ""
        if trig is not None:
            how = f" on {trig['event'] or 'event'} #{trig['eventId']}"
            if trig["properties"]:
                shown = ", ".join(f"{k}={v!r}" for k, v in list(trig["properties"].items())[:5])
                how += f" ({shown})"
        lines.append(f"Run #{run['id']} (v{run['version']}): entered "
                     f"{_when(run['enteredAt'], tz)}{how}")
        for item in run["steps"]:
            at = _when(item["at"], tz) if item.get("at") else ""
            instant = item["kind"] in ("if", "split", "set_trait", "webhook", "exit", None)
            lines.append(f"  {item['step'] or '-'}: {item['text']}"
                         + (f"   [{at}]" if at and instant else ""))
            outbox = item.get("outbox")
            if outbox:
                for d in outbox["decisions"]:
                    lines.append(f"      {d['text']}")
        if run["end"] is not None:
            lines.append(f"  end: {run['end']['text']}")
        if run["conversion"] is not None:
            lines.append(f"  goal: {run['conversion']['text']}")
    if report["notEntered"]:
        lines.append("")
        lines.append("Trigger events that started no run:")
        for item in report["notEntered"][-20:]:
            lines.append(f"  {item['event']} #{item['eventId']} at {_when(item['at'], tz)}: "
                         f"{item['text']}")
    return "\n".join(lines)
