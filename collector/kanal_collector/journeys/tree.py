"""The `steps` of a journey file: validated and compiled into a tree of `Step`s.

Steps form a tree (branches hold lists of steps and then continue after their step),
so a run visits each step at most once: (run id, step id) is a safe idempotency key.
Step ids default to their position (`1`, `2`, `3.timeout.1`, …).
"""

from __future__ import annotations

import re
from typing import Any

from ..localtime import Window, is_zone
from .checker import CONTROLS, Checker, Path_
from .model import Step

ACTIONS = ("wait", "wait_until", "wait_for", "wait_window", "if", "split", "send",
           "set_trait", "webhook", "exit")
"""The step kinds; a step has exactly one of these keys."""
MESSAGE_KINDS = ("marketing", "transactional")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
"""A journey, arm or group name."""
_STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# Extra keys each step kind may carry beside its action key, `id` and `ttl`.
_EXTRA: dict[str, frozenset[str]] = {
    "wait_for": frozenset({"on_event", "on_timeout"}),
    "if": frozenset({"then", "else"}),
    "send": frozenset({"channel", "fallbacks", "kind", "data", "priority", "quiet_hours",
                       "over_limit"}),
}


def check_steps(c: Checker, items: Any, path: Path_, prefix: str, cont: str | None,
           out: dict[str, Step]) -> str | None:
    """Compile a list of steps; return the id of its first step (or `cont` if empty)."""
    if items is None:
        return cont
    if not isinstance(items, list):
        c.error(path, "a list of steps")
        return cont
    ids: list[str] = []
    for i, item in enumerate(items):
        explicit = item.get("id") if isinstance(item, dict) else None
        step_id = str(explicit) if explicit is not None else f"{prefix}{i + 1}"
        if explicit is not None and not _STEP_ID.match(step_id):
            c.error((*path, i, "id"), "letters, digits, '_', '-', '.' (≤64)")
        if step_id in c.ids:
            c.error((*path, i, "id"), f"step id {step_id!r} is used twice")
        c.ids[step_id] = (*path, i)
        ids.append(step_id)
    for i, item in enumerate(items):
        nxt = ids[i + 1] if i + 1 < len(ids) else cont
        step = _step(c, item, (*path, i), ids[i], nxt, out)
        if step is not None:
            out[step.id] = step
    return ids[0] if ids else cont


def _step(c: Checker, node: Any, path: Path_, step_id: str, nxt: str | None,
          out: dict[str, Step]) -> Step | None:
    if not isinstance(node, dict):
        c.error(path, f"a step is a mapping with one of {', '.join(ACTIONS)}")
        return None
    kinds = [k for k in ACTIONS if k in node]
    if len(kinds) != 1:
        c.error(path, f"a step needs exactly one of {', '.join(ACTIONS)}"
                + (f" (has {', '.join(kinds)})" if kinds else ""))
        return None
    kind = kinds[0]
    c.unknown(node, {kind, "id", "ttl", *_EXTRA.get(kind, ())}, path)
    ttl = c.duration(node["ttl"], (*path, "ttl")) if "ttl" in node else None
    value = node[kind]
    here: Path_ = (*path, kind)
    spec: dict[str, Any] = {}
    branches: dict[str, str | None] = {}
    if kind == "wait":
        spec["ms"] = c.duration(value, here)
    elif kind == "wait_until":
        if not isinstance(value, dict):
            c.error(here, "a mapping: {trait: birthday, offset: -1d}")
        else:
            c.unknown(value, {"trait", "computed", "offset"}, here)
            fields = [k for k in ("trait", "computed") if k in value]
            if len(fields) != 1 or not isinstance(value[fields[0]], str):
                c.error(here, "exactly one of trait or computed (a date)")
            else:
                spec[fields[0]] = value[fields[0]]
            spec["offset_ms"] = (c.duration(value["offset"], (*here, "offset"), signed=True)
                                 if "offset" in value else 0)
    elif kind == "wait_for":
        if not isinstance(value, dict):
            c.error(here, "a mapping: {event: Order Completed, timeout: 1h}")
        else:
            c.unknown(value, {"event", "where", "same", "timeout"}, here)
            c.event_filter(value, here)
            spec.update(event=value.get("event"), where=value.get("where", {}))
            same = value.get("same", [])
            if isinstance(same, str):
                same = [same]
            if not isinstance(same, list) or not all(isinstance(s, str) for s in same):
                c.error((*here, "same"), "property names the event shares with the trigger")
            spec["same"] = same
            if "timeout" not in value:
                c.error(here, "a timeout is required (how long to wait)")
            else:
                spec["timeout_ms"] = c.duration(value["timeout"], (*here, "timeout"))
        branches["event"] = check_steps(c, node.get("on_event"), (*path, "on_event"),
                                   f"{step_id}.event.", nxt, out)
        branches["timeout"] = check_steps(c, node.get("on_timeout"), (*path, "on_timeout"),
                                     f"{step_id}.timeout.", nxt, out)
    elif kind == "wait_window":
        _wait_window(c, value, here, spec)
    elif kind == "if":
        spec["condition"] = c.condition(value, here)
        branches["then"] = check_steps(c, node.get("then"), (*path, "then"), f"{step_id}.then.",
                                  nxt, out)
        branches["else"] = check_steps(c, node.get("else"), (*path, "else"), f"{step_id}.else.",
                                  nxt, out)
    elif kind == "split":
        _split(c, value, here, step_id, nxt, out, spec, branches)
    elif kind == "send":
        if not isinstance(value, str) or not value:
            c.error(here, "the name of a message (a file in messages/)")
        spec["message"] = value
        spec["channel"] = node.get("channel", "preferred")
        if not isinstance(spec["channel"], str) or not spec["channel"]:
            c.error((*path, "channel"), "a channel name or 'preferred'")
        fallbacks = node.get("fallbacks", [])
        if not isinstance(fallbacks, list) or not all(isinstance(f, str) for f in fallbacks):
            c.error((*path, "fallbacks"), "a list of channel names")
        spec["fallbacks"] = fallbacks
        if "kind" in node:
            if node["kind"] not in MESSAGE_KINDS:
                c.error((*path, "kind"), "marketing or transactional")
            spec["kind"] = node["kind"]
        if not isinstance(node.get("data", {}), dict):
            c.error((*path, "data"), "a mapping (templates see it as `data`)")
        spec["data"] = node.get("data", {})
        if "priority" in node:
            spec["priority"] = c.priority(node["priority"], (*path, "priority"))
        for key in CONTROLS:
            if key in node:
                spec[key] = c.control(key, node[key], (*path, key))
    elif kind == "set_trait":
        if not isinstance(value, dict) or not value:
            c.error(here, "a mapping of trait: value")
        else:
            spec["traits"] = value
    elif kind == "webhook":
        if not isinstance(value, dict):
            c.error(here, "a mapping: {url: https://…, payload: {…}}")
        else:
            c.unknown(value, {"url", "payload", "timeout"}, here)
            url = value.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                c.error((*here, "url"), "an http(s) URL")
            spec.update(url=url, payload=value.get("payload", {}),
                        timeout=value.get("timeout", 10))
    elif kind == "exit":
        spec["reason"] = str(value) if value not in (True, None) else "exit step"
    return Step(step_id, kind, spec, nxt, branches, ttl)


def _wait_window(c: Checker, value: Any, here: Path_, spec: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        c.error(here, 'a mapping: {from: "09:00", to: "18:00", days: [mon, tue], '
                'timezone: Europe/Berlin}')
        return
    c.unknown(value, {"from", "to", "days", "timezone"}, here)
    ok = True
    for key in ("from", "to"):
        if key not in value:
            c.error(here, f'{key} is required (a local time of day like "09:00")')
            ok = False
    if ok:
        try:
            window = Window.parse(value["from"], value["to"], value.get("days"))
        except ValueError as exc:
            field_name, sep, message = str(exc).partition(": ")
            if sep and field_name in ("from", "to", "days"):
                c.error((*here, field_name), message)
            else:
                c.error(here, str(exc))
        else:
            # from/to as written (for people), start/end in minutes after midnight and
            # days as weekday numbers, Monday 0 (for the evaluator).
            spec.update({"from": value["from"], "to": value["to"], "start": window.start,
                         "end": window.end, "days": sorted(window.days)})
    if "timezone" in value:
        if not is_zone(value["timezone"]):
            c.error((*here, "timezone"), f"unknown time zone {value['timezone']!r} "
                    f"(an IANA name like Europe/Berlin)")
        else:
            spec["timezone"] = value["timezone"]


def _split(c: Checker, value: Any, here: Path_, step_id: str, nxt: str | None,
           out: dict[str, Step], spec: dict[str, Any], branches: dict[str, str | None]) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("arms"), list) \
            or not value["arms"]:
        c.error(here, "a mapping with arms: [{name: a, weight: 50, steps: […]}, …]")
        return
    c.unknown(value, {"arms", "holdout"}, here)
    holdout = value.get("holdout", 0)
    if isinstance(holdout, bool) or not isinstance(holdout, int | float) \
            or not 0 <= holdout < 100:
        c.error((*here, "holdout"), "a percentage from 0 to 99")
        holdout = 0
    arms: list[tuple[str, float]] = []
    for i, arm in enumerate(value["arms"]):
        where: Path_ = (*here, "arms", i)
        if not isinstance(arm, dict):
            c.error(where, "an arm is a mapping {name, weight, steps}")
            continue
        c.unknown(arm, {"name", "weight", "steps"}, where)
        name = arm.get("name")
        if not isinstance(name, str) or not NAME.match(name) or name == "holdout":
            c.error((*where, "name"), "a name (letters, digits, '_', '-'; not 'holdout')")
            continue
        if name in branches:
            c.error((*where, "name"), f"arm {name!r} is named twice")
            continue
        weight = arm.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            c.error((*where, "weight"), "a positive number")
            weight = 1
        arms.append((name, float(weight)))
        branches[name] = check_steps(c, arm.get("steps"), (*where, "steps"),
                                f"{step_id}.{name}.", nxt, out)
    spec["arms"] = arms
    spec["holdout"] = float(holdout)

