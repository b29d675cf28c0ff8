"""On-site campaigns: which message the shop's pages show, to whom, where and when.

One YAML file per campaign in `onsite/` (`[onsite] dir`, KANAL_ONSITE_DIR):

    name: newsletter              # default: the file's stem
    message: newsletter_signup    # a message file with `onsite:` content
    layout: modal                 # banner | modal | slide_in | slot
    slot: home-hero               # layout slot: <div data-kanal-slot="home-hero">
    position: bottom              # banner: top | bottom; slide_in: left | right
    enabled: true
    priority: 0                   # of two campaigns for one place, the higher shows
    pages: {include: ["/", "/shop/*"], exclude: ["/checkout*"]}  # path globs
    devices: [desktop, mobile, tablet]   # default: any device
    segments: [prospects]         # members of any of these (default: everyone)
    audience: {trait: country, in: ["SE", "NO"]}   # a condition, as in segments
    hide_if: {subscribed: email}  # people who already did the thing never see it
    show: {delay: 5s, scroll: 50, exit_intent: true}   # whichever comes first
    frequency: visit              # at most once per visit | day | ever; or always
    holdout: 10                   # percent who see nothing (the control group)
    arms: [{name: a, weight: 50}, {name: b, weight: 50, message: newsletter_b}]
    goal: {event: Order Completed, within: 7d}   # for the experiments report

`parse_campaign` validates one (every problem, with its line); catalog.py reads the
files of a folder.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..profiles.segments import SegmentError, condition_problems, duration_ms
from ..yamlfile import FieldPath, Lines, Problem, where

LAYOUTS = ("banner", "modal", "slide_in", "slot")
POSITIONS = {"banner": ("top", "bottom"), "slide_in": ("left", "right")}
DEVICES = ("desktop", "mobile", "tablet")
FREQUENCIES = ("visit", "day", "ever", "always")
HOLDOUT = "holdout"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_SLOT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
_TOP = frozenset({"name", "description", "message", "layout", "slot", "position", "enabled",
                  "priority", "pages", "devices", "segments", "audience", "hide_if", "show",
                  "frequency", "holdout", "arms", "goal"})


class CampaignError(ValueError):
    """A campaign definition is invalid; `problems` lists each problem."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Arm:
    """One variant of a campaign: its share of the people and its message."""

    name: str
    weight: float
    message: str


@dataclass(frozen=True)
class Campaign:
    """A validated on-site campaign."""

    name: str
    message: str
    layout: str
    slot: str | None = None
    position: str | None = None
    enabled: bool = True
    priority: int = 0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    """Empty: every device (a browser the User-Agent parser can't place too)."""
    segments: tuple[str, ...] = ()
    audience: dict[str, Any] | None = None
    hide_if: dict[str, Any] | None = None
    delay_ms: int = 0
    scroll: int | None = None
    exit_intent: bool = False
    frequency: str = "visit"
    holdout: float = 0.0
    arms: tuple[Arm, ...] = ()
    goal_event: str = "Order Completed"
    goal_within_ms: int = 7 * 86_400_000
    source: str = "<dict>"
    description: str | None = None
    messages: frozenset[str] = field(default_factory=frozenset)
    """Every message the campaign's arms show."""

    def on_page(self, path: str) -> bool:
        """Whether the page rules allow a page path (globs; excludes win)."""
        if any(fnmatch.fnmatchcase(path, p) for p in self.exclude):
            return False
        return not self.include or any(fnmatch.fnmatchcase(path, p) for p in self.include)

    def arm_for(self, who: str) -> Arm | None:
        """The stable arm of a person (`who`: a profile or browser key), or None for
        the holdout. A hash of campaign and person: the same person, the same arm."""
        digest = hashlib.sha256(f"{self.name}\0{who}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * 100
        if point < self.holdout:
            return None
        total = sum(a.weight for a in self.arms)
        spot = (point - self.holdout) / (100 - self.holdout) * total
        for arm in self.arms:
            if spot < arm.weight:
                return arm
            spot -= arm.weight
        return self.arms[-1]


class _Checker:
    def __init__(self, source: str, lines: Lines | None) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def error(self, path: FieldPath, message: str) -> None:
        line = self.lines.line(path) if self.lines is not None else None
        self.problems.append(Problem(self.source, line, where(path), message))

    def names(self, value: Any, path: FieldPath, what: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(path, f"a list of {what}")
            return ()
        return tuple(value)

    def condition(self, value: Any, path: FieldPath) -> dict[str, Any] | None:
        if value is None:
            return None
        condition, problems = condition_problems(value)
        for sub, message in problems:
            self.error((*path, *sub), message)
        return condition

    def duration(self, value: Any, path: FieldPath) -> int:
        try:
            return duration_ms(value, "")
        except SegmentError:
            self.error(path, f"a duration like 5s, 30m or 7d, not {value!r}")
            return 0

    def number(self, value: Any, path: FieldPath, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not low <= value <= high:
            self.error(path, f"a number from {low:g} to {high:g}, not {value!r}")
            return low
        return float(value)


def parse_campaign(data: Any, *, source: str = "<dict>", name: str | None = None,
                   lines: Lines | None = None) -> Campaign:
    """Validate one campaign (a mapping as read from YAML); CampaignError lists every
    problem with its line."""
    c = _Checker(source, lines)
    campaign = _check(c, data, name)
    if c.problems or campaign is None:
        problems = sorted(c.problems, key=lambda p: (p.line or 0, p.where))
        raise CampaignError("\n".join(map(str, problems)), problems)
    return campaign


def _check(c: _Checker, data: Any, name: str | None) -> Campaign | None:
    if not isinstance(data, Mapping):
        c.error((), "a campaign must be a mapping")
        return None
    for key in sorted(set(map(str, data)) - _TOP):
        c.error((key,), f"unknown key {key}; a campaign takes {', '.join(sorted(_TOP))}")
    name = data.get("name", name)
    if not isinstance(name, str) or not _NAME.match(name):
        c.error(("name",), "letters, digits, _ - . (at most 100)")
        name = "?"
    message = data.get("message")
    if message is not None and (not isinstance(message, str) or not message):
        c.error(("message",), "the name of a message (a file in messages/)")
    layout = data.get("layout")
    if layout not in LAYOUTS:
        c.error(("layout",), f"one of {', '.join(LAYOUTS)}, not {layout!r}")
    slot = data.get("slot")
    if layout == "slot" and (not isinstance(slot, str) or not _SLOT.match(slot)):
        c.error(("slot",), "the slot's name (<div data-kanal-slot=\"NAME\">): letters, "
                           "digits, _ and -")
    elif layout != "slot" and slot is not None:
        c.error(("slot",), "only with layout: slot")
    position = data.get("position")
    if position is not None and position not in POSITIONS.get(str(layout), ()):
        allowed = POSITIONS.get(str(layout))
        c.error(("position",), f"one of {', '.join(allowed)}" if allowed
                else f"a {layout} has no position")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        c.error(("enabled",), "true or false")
    priority = data.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        c.error(("priority",), "a whole number")
        priority = 0
    pages = data.get("pages") or {}
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    if not isinstance(pages, Mapping):
        c.error(("pages",), "a mapping: {include: [\"/\", \"/shop/*\"], exclude: [...]}")
    else:
        for key in sorted(set(map(str, pages)) - {"include", "exclude"}):
            c.error(("pages", key), "unknown key; pages take include and exclude")
        include = c.names(pages.get("include", []), ("pages", "include"), "path globs")
        exclude = c.names(pages.get("exclude", []), ("pages", "exclude"), "path globs")
        for key, globs in (("include", include), ("exclude", exclude)):
            for i, glob in enumerate(globs):
                if not glob.startswith(("/", "*")):
                    c.error(("pages", key, i), f"a path glob starting with / (like "
                                               f"/shop/*), not {glob!r}")
    devices = c.names(data.get("devices", []), ("devices",), "devices")
    for i, device in enumerate(devices):
        if device not in DEVICES:
            c.error(("devices", i), f"one of {', '.join(DEVICES)}, not {device!r}")
    segments = c.names(data.get("segments", []), ("segments",), "segment names")
    audience = c.condition(data.get("audience"), ("audience",))
    hide_if = c.condition(data.get("hide_if"), ("hide_if",))
    show = data.get("show") or {}
    delay_ms = 0
    scroll: int | None = None
    exit_intent = False
    if not isinstance(show, Mapping):
        c.error(("show",), "a mapping: {delay: 5s, scroll: 50, exit_intent: true}")
    else:
        for key in sorted(set(map(str, show)) - {"delay", "scroll", "exit_intent"}):
            c.error(("show", key), "unknown key; show takes delay, scroll and exit_intent")
        if "delay" in show:
            delay_ms = c.duration(show["delay"], ("show", "delay"))
        if "scroll" in show:
            scroll = int(c.number(show["scroll"], ("show", "scroll"), 1, 100))
        exit_intent = show.get("exit_intent", False)
        if not isinstance(exit_intent, bool):
            c.error(("show", "exit_intent"), "true or false")
            exit_intent = False
    frequency = data.get("frequency", "visit")
    if frequency not in FREQUENCIES:
        c.error(("frequency",), f"one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    holdout = c.number(data.get("holdout", 0), ("holdout",), 0, 99)
    arms = _arms(c, data.get("arms"), message)
    goal = data.get("goal") or {}
    goal_event, goal_within = "Order Completed", 7 * 86_400_000
    if not isinstance(goal, Mapping):
        c.error(("goal",), "a mapping: {event: Order Completed, within: 7d}")
    else:
        for key in sorted(set(map(str, goal)) - {"event", "within"}):
            c.error(("goal", key), "unknown key; a goal takes event and within")
        goal_event = goal.get("event", goal_event)
        if not isinstance(goal_event, str) or not goal_event:
            c.error(("goal", "event"), "an event name")
        if "within" in goal:
            goal_within = c.duration(goal["within"], ("goal", "within"))
    description = data.get("description")
    if c.problems:
        return None
    return Campaign(
        name=str(name), message=arms[0].message, layout=str(layout),
        slot=slot, position=position, enabled=bool(enabled), priority=int(priority),
        include=include, exclude=exclude, devices=devices, segments=segments,
        audience=audience, hide_if=hide_if, delay_ms=delay_ms, scroll=scroll,
        exit_intent=bool(exit_intent), frequency=str(frequency), holdout=holdout,
        arms=arms, goal_event=str(goal_event), goal_within_ms=goal_within,
        source=c.source, description=str(description) if description else None,
        messages=frozenset(a.message for a in arms))


def _arms(c: _Checker, value: Any, message: Any) -> tuple[Arm, ...]:
    if value is None:
        if not isinstance(message, str) or not message:
            c.error(("message",), "required (or arms, each with its message)")
            return (Arm("main", 1.0, "?"),)
        return (Arm("main", 1.0, message),)
    if not isinstance(value, list) or not value:
        c.error(("arms",), "a list of {name, weight, message}")
        return (Arm("main", 1.0, "?"),)
    arms: list[Arm] = []
    for i, item in enumerate(value):
        here: FieldPath = ("arms", i)
        if not isinstance(item, Mapping):
            c.error(here, "a mapping: {name: a, weight: 50, message: …}")
            continue
        for key in sorted(set(map(str, item)) - {"name", "weight", "message"}):
            c.error((*here, key), "unknown key; an arm takes name, weight and message")
        arm_name = item.get("name")
        if not isinstance(arm_name, str) or not _NAME.match(arm_name) or arm_name == HOLDOUT:
            c.error((*here, "name"), "letters, digits, _ - . (and not 'holdout')")
            arm_name = f"arm{i}"
        if arm_name in {a.name for a in arms}:
            c.error((*here, "name"), f"arm {arm_name!r} is named twice")
        weight = c.number(item.get("weight", 1), (*here, "weight"), 0.001, 1e6)
        arm_message = item.get("message", message)
        if not isinstance(arm_message, str) or not arm_message:
            c.error((*here, "message"), "the arm's message (or a message for the campaign)")
            arm_message = "?"
        arms.append(Arm(str(arm_name), weight, str(arm_message)))
    return tuple(arms) or (Arm("main", 1.0, "?"),)
