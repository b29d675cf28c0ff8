"""One run of `kanal journeys why`, step by step: what the log says happened at each
step the run reached, and each send's outbox row and the dispatcher's decisions.

For each run it walks the run's version of the journey from the first step, pairing
each step with its log entries (a wait and until when, a condition's result, a split's
arm, a send and its outbox row), and says in words why each message was sent,
deferred or skipped, and how the run ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from ..store import explain as store
from ..store import journeys as journey_store
from ..store import outbox as outbox_store
from ..store.connection import Connection
from .evaluator import outbox_key
from .model import Journey, Step
from .wording import duration, reason_words
from .wording import time_of as _time
from .wording import when_text as _when
from .wording import zone_of as _zone

END_STATES = ("completed", "converted", "exited", "expired")
_MAX_STEPS = 500


def run_report(conn: Connection, journey: str, run: dict[str, Any],
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
        "dedupe": run["dedupe"], "trusted": bool(run.get("trusted", True)), "steps": [],
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
        detail = whats["send_failed"]["detail"] or {}
        failed = (outbox_store.get(conn, int(detail["outbox_id"]))
                  if detail.get("outbox_id") is not None else None)
        item.update(what="send_failed", detail=detail,
                    outbox=None if failed is None else send_report(conn, failed, tz))
        item["text"] = f"send {spec['message']}: could not be queued ({detail.get('error')})"
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

