"""What starts a run, and what ends it on a goal: the `trigger`, `entry`, `goal`,
`group` and `exclude` sections of a journey file, validated and compiled.

A trigger is one mapping or a list of them (`Product Added` or `Checkout Started`);
each event or segment trigger has a `max_age` (default 1d): how old an event may be,
by its own time, when Kanal receives it, to start a run (history is not now; gate.py).
"""

from __future__ import annotations

import re
from typing import Any

from .checker import Checker, Path_

ENTRY_RULES = ("once", "every_time", "once_per")
DEFAULT_MAX_AGE_MS = 86_400_000
"""A trigger event may be at most a day old when it is received (`max_age`)."""
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_KINDS = ("event", "segment", "schedule")


def check_triggers(c: Checker, node: Any) -> tuple[dict[str, Any], ...]:
    """The `trigger` section: one trigger, or a list of event and segment triggers."""
    path: Path_ = ("trigger",)
    if isinstance(node, list):
        if not node:
            c.error(path, "a list of triggers needs at least one")
            return ()
        out = tuple(_trigger(c, item, (*path, i)) for i, item in enumerate(node))
        if len(out) > 1 and any("schedule" in t for t in out):
            c.error(path, "a schedule trigger stands alone (not in a list of triggers)")
        return out
    return (_trigger(c, node, path),)


def _trigger(c: Checker, node: Any, path: Path_) -> dict[str, Any]:
    if not isinstance(node, dict):
        c.error(path, "a trigger is required: {event: …}, {segment: …} or {schedule: …}"
                " (or a list of event and segment triggers)")
        return {}
    kinds = [k for k in _KINDS if k in node]
    if len(kinds) != 1:
        c.error(path, "exactly one of event, segment, schedule")
        return dict(node)
    kind = kinds[0]
    if kind in ("event", "segment"):
        out = dict(node)
        out["max_age_ms"] = DEFAULT_MAX_AGE_MS
        if "max_age" in node:
            age = c.duration(node["max_age"], (*path, "max_age"))
            if age is not None and age <= 0:
                c.error((*path, "max_age"), "a duration longer than 0s")
            elif age is not None:
                out["max_age_ms"] = age
        if kind == "event":
            c.unknown(node, {"event", "where", "max_age"}, path)
            c.event_filter(node, path)
        else:
            c.unknown(node, {"segment", "max_age"}, path)
            if not isinstance(node["segment"], str) or not node["segment"]:
                c.error((*path, "segment"), "a segment name")
        return out
    else:
        c.unknown(node, {"schedule", "audience"}, path)
        schedule = node["schedule"]
        if not isinstance(schedule, dict):
            c.error((*path, "schedule"), "a mapping: {every: 1d, at: '09:00'}")
        else:
            c.unknown(schedule, {"every", "at"}, (*path, "schedule"))
            every = c.duration(schedule.get("every"), (*path, "schedule", "every"))
            if every is not None and every < 60_000:
                c.error((*path, "schedule", "every"), "at least 1m")
            at = schedule.get("at")
            if at is not None and not (isinstance(at, str) and _AT.match(at)):
                c.error((*path, "schedule", "at"), "a UTC time of day like '09:00'")
        if "audience" not in node:
            c.error(path, "a schedule needs an audience (a segment-style condition)")
        else:
            audience = c.condition(node["audience"], (*path, "audience"))
            if audience is not None:
                return {**node, "audience": audience}
    return dict(node)


def check_entry(c: Checker, node: Any) -> dict[str, Any]:
    """The `entry` section: the rule, its period, the dedupe key."""
    path: Path_ = ("entry",)
    if node is None:
        return {"rule": "once"}
    if not isinstance(node, dict):
        c.error(path, "a mapping: {rule: once | every_time | once_per, period: 30d, "
                "dedupe: property}")
        return {"rule": "once"}
    c.unknown(node, {"rule", "period", "dedupe"}, path)
    rule = node.get("rule", "once")
    out: dict[str, Any] = {"rule": rule}
    if rule not in ENTRY_RULES:
        c.error((*path, "rule"), f"one of {', '.join(ENTRY_RULES)}, not {rule!r}")
    if rule == "once_per":
        out["period_ms"] = c.duration(node.get("period"), (*path, "period"))
    elif "period" in node:
        c.error((*path, "period"), "only with rule: once_per")
    if "dedupe" in node:
        if not isinstance(node["dedupe"], str) or not node["dedupe"]:
            c.error((*path, "dedupe"), "the name of a property of the trigger event")
        out["dedupe"] = node["dedupe"]
    return out


def check_goal(c: Checker, node: Any) -> dict[str, Any] | None:
    """The `goal` section: the event that ends a run as converted."""
    path: Path_ = ("goal",)
    if node is None:
        return None
    if not isinstance(node, dict):
        c.error(path, "a mapping: {event: Order Completed, within: 7d}")
        return None
    c.unknown(node, {"event", "where", "within", "same"}, path)
    c.event_filter(node, path)
    out = dict(node)
    if "within" in node:
        out["within_ms"] = c.duration(node["within"], (*path, "within"))
    out["same"] = c.names(node.get("same", []), (*path, "same"),
                          "property names the goal event shares with the trigger")
    return out


def check_exclude(c: Checker, node: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The `exclude` section: (journeys, groups) this journey does not start during."""
    path: Path_ = ("exclude",)
    if node is None:
        return (), ()
    if not isinstance(node, dict):
        c.error(path, "a mapping: {journeys: [name, …], groups: [name, …]}")
        return (), ()
    c.unknown(node, {"journeys", "groups"}, path)
    journeys = c.names(node.get("journeys", []), (*path, "journeys"), "journey names")
    groups = c.names(node.get("groups", []), (*path, "groups"), "group names")
    return tuple(journeys), tuple(groups)

