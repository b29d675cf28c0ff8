"""Journey files: parse, validate (every problem with its line) and compile to steps.

A journey is one YAML file in `journeys/` (README.md, "Journeys", is the full reference):

    name: abandoned_cart             # default: the file's stem
    priority: 10                     # who gets a person's daily budget (default 0)
    quiet_hours: defer               # or drop (messages/controls.py)
    over_limit: wait                 # or skip (over a frequency cap or the budget)
    trigger: {event: Product Added, where: {currency: EUR}}
    entry: {rule: every_time, dedupe: cart_id}
    goal: {event: Order Completed, within: 7d}
    steps:
      - wait_for: {event: Order Completed, timeout: 1h}
        on_timeout:
          - send: cart_reminder
            channel: email
          - wait: 1d
          - wait_window: {from: "09:00", to: "18:00", days: [mon, tue, wed, thu, fri]}
          - send: cart_reminder
            channel: sms

Steps form a tree (branches hold lists of steps and then continue after their step),
so a run visits each step at most once: (run id, step id) is a safe idempotency key.
The version of a journey is the hash of its file's text; runs keep the version they
started on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import yamlfile
from ..localtime import Window, is_zone
from ..messages.controls import OVER_LIMIT_MODES, QUIET_HOURS_MODES
from ..profiles.segments import (
    OPS,
    ProfileView,
    SegmentError,
    duration_ms,
    matches,
    parse_condition,
)
from ..yamlfile import Lines, Problem, where
from .errors import JourneyFileError

ACTIONS = ("wait", "wait_until", "wait_for", "wait_window", "if", "split", "send",
           "set_trait", "webhook", "exit")
"""The step kinds; a step has exactly one of these keys."""
ENTRY_RULES = ("once", "every_time", "once_per")
MESSAGE_KINDS = ("marketing", "transactional")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_TOP = frozenset({"name", "description", "trigger", "entry", "goal", "steps", "kind",
                  "enabled", "priority", "quiet_hours", "over_limit"})
# Controls a journey sets for its sends (a send step may override them); messages/controls.
_CONTROLS: dict[str, tuple[str, ...]] = {"quiet_hours": QUIET_HOURS_MODES,
                                         "over_limit": OVER_LIMIT_MODES}
# Extra keys each step kind may carry beside its action key, `id` and `ttl`.
_EXTRA: dict[str, frozenset[str]] = {
    "wait_for": frozenset({"on_event", "on_timeout"}),
    "if": frozenset({"then", "else"}),
    "send": frozenset({"channel", "fallbacks", "kind", "data", "priority", "quiet_hours",
                       "over_limit", "expires"}),
}
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Step:
    """One compiled step: its kind and parameters, and where the run goes next."""

    id: str
    kind: str
    spec: Mapping[str, Any]
    next: str | None
    branches: Mapping[str, str | None] = field(default_factory=dict)
    ttl_ms: int | None = None


@dataclass(frozen=True)
class Journey:
    """One validated journey file (one version of the journey)."""

    name: str
    source: str
    text: str
    trigger: Mapping[str, Any]
    entry: Mapping[str, Any]
    goal: Mapping[str, Any] | None
    steps: Mapping[str, Step]
    first: str | None
    kind: str = "marketing"
    enabled: bool = True
    description: str = ""
    priority: int = 0
    """Who gets a person's daily budget when several journeys want it (higher first)."""
    quiet_hours: str = "defer"
    """What a send due in quiet hours does: defer (to their end) or drop."""
    over_limit: str = "wait"
    """What a send over a frequency cap or the daily budget does: wait (a day) or skip."""

    @property
    def hash(self) -> str:
        """The version's identity: a hash of the file's text."""
        return content_hash(self.text)

    def messages(self) -> set[str]:
        """The message names its send steps use."""
        return {str(s.spec["message"]) for s in self.steps.values() if s.kind == "send"}

    def trigger_matches(self, event: str | None, body: Mapping[str, Any]) -> bool:
        """True when an event (name and body) triggers this journey."""
        trigger = self.trigger
        if "event" in trigger:
            return event == trigger["event"] and event_matches(
                {"event": trigger["event"], "where": trigger.get("where", {})}, body)
        if "segment" in trigger:
            props = body.get("properties")
            return (event == "Segment Entered" and isinstance(props, dict)
                    and props.get("segment") == trigger["segment"])
        return False

    def named_events(self) -> set[str]:
        """Every event name the journey reacts to (trigger, waits, goal)."""
        names = set()
        if "event" in self.trigger:
            names.add(str(self.trigger["event"]))
        if "segment" in self.trigger:
            names.add("Segment Entered")
        if self.goal:
            names.add(str(self.goal["event"]))
        for step in self.steps.values():
            if step.kind == "wait_for":
                names.add(str(step.spec["event"]))
        return names


def content_hash(text: str) -> str:
    """The version hash of a journey file's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def event_matches(condition: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """True when one event body passes `{"event": …, "where": …}` (segment semantics)."""

    def events(name: str, since: int) -> Iterator[dict[str, Any]]:
        return iter([dict(body)])

    return matches(dict(condition), ProfileView({}, {}, events), 0)


# -- validation -------------------------------------------------------------------------

class _Checker:
    def __init__(self, source: str, lines: Lines) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []
        self.ids: dict[str, Path_] = {}

    def error(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.source, self.lines.line(path), where(path),
                                     message))

    def duration(self, value: Any, path: Path_, *, signed: bool = False) -> int | None:
        sign = 1
        if signed and isinstance(value, str) and value.strip().startswith(("-", "+")):
            sign = -1 if value.strip()[0] == "-" else 1
            value = value.strip()[1:]
        try:
            return sign * duration_ms(value, "x")
        except SegmentError:
            self.error(path, f"a duration like 30m, 12h, 7d or 2w, not {value!r}")
            return None

    def condition(self, node: Any, path: Path_) -> dict[str, Any] | None:
        try:
            return parse_condition(node)
        except SegmentError as exc:
            for problem in exc.problems:
                sub = problem.where.replace("[", ".").replace("]", "").split(".")
                self.error((*path, *(int(s) if s.isdigit() else s for s in sub if s)),
                           problem.message)
            return None

    def event_filter(self, node: Mapping[str, Any], path: Path_) -> None:
        if not isinstance(node.get("event"), str) or not node["event"]:
            self.error((*path, "event"), "an event name is required")
            return
        where = node.get("where", {})
        if not isinstance(where, dict):
            self.error((*path, "where"), "a mapping of property: value or {op: value}")
            return
        for prop, test in where.items():
            if isinstance(test, dict) and (len(test) != 1 or next(iter(test)) not in OPS):
                self.error((*path, "where", prop), f"one operator of {', '.join(OPS)}")

    def priority(self, value: Any, path: Path_) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"a whole number (higher goes first), not {value!r}")
            return 0
        return value

    def control(self, key: str, value: Any, path: Path_) -> str:
        choices = _CONTROLS[key]
        if value not in choices:
            self.error(path, f"{' or '.join(choices)}, not {value!r}")
            return choices[0]
        return str(value)

    def unknown(self, node: Mapping[str, Any], allowed: set[str] | frozenset[str],
                path: Path_) -> None:
        for key in node:
            if key not in allowed:
                self.error((*path, str(key)), f"unknown field {key!r} "
                           f"(expected one of {', '.join(sorted(allowed))})")


def _trigger(c: _Checker, node: Any) -> dict[str, Any]:
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


def _entry(c: _Checker, node: Any) -> dict[str, Any]:
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


def _goal(c: _Checker, node: Any) -> dict[str, Any] | None:
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


def _steps(c: _Checker, items: Any, path: Path_, prefix: str, cont: str | None,
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


def _step(c: _Checker, node: Any, path: Path_, step_id: str, nxt: str | None,
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
        branches["event"] = _steps(c, node.get("on_event"), (*path, "on_event"),
                                   f"{step_id}.event.", nxt, out)
        branches["timeout"] = _steps(c, node.get("on_timeout"), (*path, "on_timeout"),
                                     f"{step_id}.timeout.", nxt, out)
    elif kind == "wait_window":
        _wait_window(c, value, here, spec)
    elif kind == "if":
        spec["condition"] = c.condition(value, here)
        branches["then"] = _steps(c, node.get("then"), (*path, "then"), f"{step_id}.then.",
                                  nxt, out)
        branches["else"] = _steps(c, node.get("else"), (*path, "else"), f"{step_id}.else.",
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
        if "expires" in node:
            # An on-site message waits for the person's next page view this long.
            if spec["channel"] != "onsite":
                c.error((*path, "expires"), "only for channel: onsite")
            spec["expires"] = c.duration(node["expires"], (*path, "expires"))
        for key in _CONTROLS:
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


def _wait_window(c: _Checker, value: Any, here: Path_, spec: dict[str, Any]) -> None:
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


def _split(c: _Checker, value: Any, here: Path_, step_id: str, nxt: str | None,
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
        if not isinstance(name, str) or not _NAME.match(name) or name == "holdout":
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
        branches[name] = _steps(c, arm.get("steps"), (*where, "steps"),
                                f"{step_id}.{name}.", nxt, out)
    spec["arms"] = arms
    spec["holdout"] = float(holdout)


def _check_top(c: _Checker, data: Any, default_name: str | None) -> Journey | None:
    if not isinstance(data, dict):
        c.error((), "a journey file is a mapping (name, trigger, steps, …)")
        return None
    c.unknown(data, _TOP, ())
    name = data.get("name", default_name)
    if name is None:
        c.error((), "name: a journey needs a name")
        name = "?"
    elif not isinstance(name, str) or not _NAME.match(name):
        c.error(("name",), "letters, digits, '_', '-', '.' (≤100)")
        name = default_name or "?"
    kind = data.get("kind", "marketing")
    if kind not in MESSAGE_KINDS:
        c.error(("kind",), "marketing or transactional")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        c.error(("enabled",), "true or false")
    priority = c.priority(data["priority"], ("priority",)) if "priority" in data else 0
    controls = {key: c.control(key, data[key], (key,)) if key in data else choices[0]
                for key, choices in _CONTROLS.items()}
    trigger = _trigger(c, data.get("trigger"))
    entry = _entry(c, data.get("entry"))
    if entry.get("dedupe") and "event" not in trigger:
        c.error(("entry", "dedupe"), "a dedupe key needs an event trigger")
    goal = _goal(c, data.get("goal"))
    steps: dict[str, Step] = {}
    if "steps" not in data:
        c.error((), "steps: a list of steps is required")
    first = _steps(c, data.get("steps"), ("steps",), "", None, steps)
    return Journey(name=name, source=c.source, text="", trigger=trigger, entry=entry,
                   goal=goal, steps=steps, first=first, kind=str(kind),
                   enabled=bool(enabled), description=str(data.get("description") or ""),
                   priority=priority, quiet_hours=controls["quiet_hours"],
                   over_limit=controls["over_limit"])


def parse_journey(text: str, *, source: str = "<string>", name: str | None = None,
                  messages: set[str] | None = None, strict: bool = True) -> Journey:
    """Validate a journey file's text; JourneyFileError lists every problem with its line.

    `messages` (the names in the message catalog), when given, is checked against the
    journey's send steps. With `strict` (files being loaded or validated), an unquoted
    value YAML 1.1 and 1.2 read differently is a problem (yamlfile.py); a stored version
    that runs are pinned to is parsed with `strict=False`, as it always was.
    """
    document = yamlfile.read(text, source=source, strict=strict)
    if document.data is None and document.problems:
        raise JourneyFileError(document.problems)
    c = _Checker(source, document.lines)
    data = document.data
    journey = _check_top(c, data, name)
    if journey is not None and messages is not None:
        for step_id, step in journey.steps.items():
            if step.kind == "send" and step.spec.get("message") not in messages:
                c.error((*c.ids[step_id], "send"),
                        f"no message named {step.spec.get('message')!r}")
    if c.problems or document.problems or journey is None:
        raise JourneyFileError(yamlfile.combine(document.problems, c.problems))
    return Journey(**{**journey.__dict__, "text": text})


def load_file(path: Path, *, messages: set[str] | None = None) -> Journey:
    """Read and validate one journey file (its name defaults to the file's stem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JourneyFileError([Problem(str(path), None, "", str(exc))]) from None
    return parse_journey(text, source=str(path), name=path.stem, messages=messages)


def journey_files(directory: Path) -> list[Path]:
    """The journey files of a directory (*.yaml, *.yml, also in subfolders), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def load_directory(directory: Path) -> tuple[dict[str, Journey], list[Problem]]:
    """The valid journeys of a directory, and the problems of the invalid files."""
    journeys: dict[str, Journey] = {}
    problems: list[Problem] = []
    for path in journey_files(directory):
        try:
            journey = load_file(path)
        except JourneyFileError as exc:
            problems.extend(exc.problems)
            continue
        if journey.name in journeys:
            problems.append(Problem(str(path), None, "name", f"journey {journey.name!r} "
                                    f"is also defined in {journeys[journey.name].source}"))
            continue
        journeys[journey.name] = journey
    return journeys, problems
