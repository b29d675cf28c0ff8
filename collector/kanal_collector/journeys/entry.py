"""What starts a run, and what ends it on a goal: the `trigger`, `entry` and `goal`
sections of a journey file, validated and compiled.
"""

from __future__ import annotations

import re
from typing import Any

from .checker import Checker, Path_

ENTRY_RULES = ("once", "every_time", "once_per")
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def check_trigger(c: Checker, node: Any) -> dict[str, Any]:
    path: Path_ = ("trigger",)
    if not isinstance(node, dict):
        c.error(path, "a trigger is required: {event: …}, {segment: …} or {schedule: …}")
        return {}
    kinds = [k for k in ("event", "segment", "schedule") if k in node]
    if len(kinds) != 1:
        c.error(path, "exactly one of event, segment, schedule")
        return dict(node)
    kind = kinds[0]
    if kind == "event":
        c.unknown(node, {"event", "where"}, path)
        c.event_filter(node, path)
    elif kind == "segment":
        c.unknown(node, {"segment"}, path)
        if not isinstance(node["segment"], str) or not node["segment"]:
            c.error((*path, "segment"), "a segment name")
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
    path: Path_ = ("goal",)
    if node is None:
        return None
    if not isinstance(node, dict):
        c.error(path, "a mapping: {event: Order Completed, within: 7d}")
        return None
    c.unknown(node, {"event", "where", "within"}, path)
    c.event_filter(node, path)
    out = dict(node)
    if "within" in node:
        out["within_ms"] = c.duration(node["within"], (*path, "within"))
    return out

