"""Validation helpers for journey files: the checks shared by the parts of a file
(durations, conditions, event filters, controls, names), each problem with the line of
its field (yamlfile.Lines).

Every problem is collected (not raised) with its field path and line, so
`kanal journeys validate` reports them all at once as FILE:LINE: FIELD: WHAT.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..channels.tables import PULL_CHANNELS
from ..messages.controls import OVER_LIMIT_MODES, QUIET_HOURS_MODES
from ..messages.eligibility import BUILTIN_CHANNELS
from ..profiles.segments import OPS, SegmentError, duration_ms, parse_condition
from ..yamlfile import Lines, Problem, where

Path_ = tuple[str | int, ...]
"""Where a value is in a file: keys and list positions from the top."""
CONTROLS: dict[str, tuple[str, ...]] = {"quiet_hours": QUIET_HOURS_MODES,
                                        "over_limit": OVER_LIMIT_MODES}
"""Controls a journey sets for its sends (a send step may override them); the first
choice is the default (messages/controls.py)."""


@dataclass(frozen=True)
class References:
    """What a journey file may name besides itself, for checking its references.

    Each part is optional: None means "not known here, not checked".
    """

    messages: Mapping[str, Collection[str]] | None = None
    """Message names, each with the channel kinds it has content for."""
    channels: Mapping[str, str] | None = None
    """Channel names (configured, else the built-in ones), each with its kind."""
    journeys: Collection[str] | None = None
    """Journey names of the directory (for `exclude.journeys`)."""
    groups: Collection[str] | None = None
    """Group names journeys of the directory declare (for `exclude.groups`)."""
    audiences: Collection[str] | None = None
    """Ads audience names, the `[audiences.NAME]` tables of kanal.toml (for `audience`
    steps)."""


def channel_kinds(channels: Mapping[str, Any] | None) -> dict[str, str]:
    """{name: kind} of channel objects by name, or the built-in channels without any."""
    if not channels:
        return {name: kind for name, (kind, _) in BUILTIN_CHANNELS.items()}
    pulled = {name: kind for name, (kind, _) in PULL_CHANNELS.items()}
    return {**pulled, **{str(name): str(ch.kind) for name, ch in channels.items()}}


class Checker:
    """Collects the problems of one file, each with its field path and line."""

    def __init__(self, source: str, lines: Lines,
                 references: References | None = None) -> None:
        self.source = source
        self.lines = lines
        self.references = references or References()
        self.problems: list[Problem] = []
        self.ids: dict[str, Path_] = {}

    def error(self, path: Path_, message: str) -> None:
        """Note one problem at a field."""
        self.problems.append(Problem(self.source, self.lines.line(path), where(path),
                                     message))

    def duration(self, value: Any, path: Path_, *, signed: bool = False) -> int | None:
        """A duration in ms (`30m`, `-1d` when signed), or None after noting why not."""
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
        """A segment-style condition, compiled, or None after noting why not."""
        try:
            return parse_condition(node)
        except SegmentError as exc:
            for problem in exc.problems:
                sub = problem.where.replace("[", ".").replace("]", "").split(".")
                self.error((*path, *(int(s) if s.isdigit() else s for s in sub if s)),
                           problem.message)
            return None

    def event_filter(self, node: Mapping[str, Any], path: Path_) -> None:
        """Check `{event: NAME, where: {…}}`."""
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
        """A whole-number priority (0 after noting a bad one)."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"a whole number (higher goes first), not {value!r}")
            return 0
        return value

    def control(self, key: str, value: Any, path: Path_) -> str:
        """One of a control's choices (the default after noting a bad one)."""
        choices = CONTROLS[key]
        if value not in choices:
            self.error(path, f"{' or '.join(choices)}, not {value!r}")
            return choices[0]
        return str(value)

    def unknown(self, node: Mapping[str, Any], allowed: set[str] | frozenset[str],
                path: Path_) -> None:
        """Note every key of `node` that isn't allowed."""
        for key in node:
            if key not in allowed:
                self.error((*path, str(key)), f"unknown field {key!r} "
                           f"(expected one of {', '.join(sorted(allowed))})")


    def names(self, value: Any, path: Path_, what: str) -> list[str]:
        """A name or a list of names (non-empty strings); [] after noting a bad value."""
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(path, f"a list of {what}")
            return []
        return list(value)
