"""Segment definitions: parse and validate a segments file, and test a profile against it.

A segments file (YAML or JSON) holds a list of segments under `segments:`; each has a
`name`, an optional `description`, and conditions under `all:` (every one must hold) or
`any:` (one must hold). Conditions nest (`all`, `any`, `not`) and are of four kinds:

    - trait: country            # a trait of the profile
      eq: SE                    # eq ne gt gte lt lte in not_in contains exists
    - computed: revenue         # a computed value (see COMPUTED)
      gt: 500
    - computed: last_order_at   # times also take within / older_than (30m, 12h, 7d, 2w)
      older_than: 90d
    - event: Product Viewed     # how many of the person's events, in a window,
      min: 3                    # with property filters
      within: 7d
      where: {category: shoes}
    - subscribed: email         # not unsubscribed from a channel (or channel/topic)
    - consent: marketing        # consent granted for a category
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import yamlfile
from ..yamlfile import FieldPath, Lines, Problem, where

OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")
TIME_OPS = ("within", "older_than")
COMPUTED = {
    "first_seen": "firstSeen", "last_seen": "lastSeen", "orders": "orders",
    "revenue": "revenue", "average_order_value": "averageOrderValue",
    "last_order_at": "lastOrderAt", "origins": "origins",
    "preferred_channel": "preferredChannel", "language": "language",
    "timezone": "timezone", "country": "country",
    "last_email_engagement": "lastEmailEngagedAt",
    # predictive scores (predict/), from the latest fit
    "stage": "stage", "churn_risk": "churnRisk", "probability_active": "probabilityActive",
    "expected_orders_90d": "expectedOrders90d", "expected_orders_365d": "expectedOrders365d",
    "predicted_value": "predictedValue", "historic_value": "historicValue",
    "next_order_at": "nextOrderAt", "recency_score": "recencyScore",
    "frequency_score": "frequencyScore", "monetary_score": "monetaryScore",
}
TIME_FIELDS = frozenset({"first_seen", "last_seen", "last_order_at", "last_email_engagement",
                         "next_order_at"})
NAMED_VALUES = {
    "stage": ("new", "active", "loyal", "champions", "at_risk", "about_to_lose", "lost"),
    "churn_risk": ("low", "medium", "high"),
}
"""Computed values with a fixed set of names: a condition may only compare with those."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class SegmentError(ValueError):
    """A segment definition is invalid; `problems` says where and what, each one."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def duration_ms(value: Any, where: str) -> int:
    """'7d', '12h', '30m', '2w', '45s' or a number of seconds, in milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value * 1000)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    raise SegmentError(f"{where}: a duration like 7d, 12h or 30m, not {value!r}")


@dataclass(frozen=True)
class Segment:
    """One validated segment definition."""

    name: str
    definition: dict[str, Any]

    @property
    def time_dependent(self) -> bool:
        """True when membership can change with time alone (a periodic sweep is needed)."""
        return _time_dependent(self.definition)

    @property
    def only_loses_with_time(self) -> bool:
        """True when time alone can only take members out, never bring anyone in (every
        time test is `within`, none under `not`, no event count with a `max`): a sweep
        need only re-test its members."""
        return _time_moves(self.definition) == {FALLS}

    @property
    def moves_with_time(self) -> set[str]:
        """How time alone can change membership: FALLS (members leave), RISES (people
        come in), both or neither."""
        return _time_moves(self.definition)

    def rises_through(self) -> list[tuple[str, int]] | None:
        """(profile column, window ms) of each test time alone can turn from false to true
        when all of them are on a value the profiles table keeps in an indexed column
        (last_seen: `not: {computed: last_seen, within: 30d}`, `computed: last_seen,
        older_than: 60d`): a sweep finds who may come in by the column. None when one is
        not (last_order_at, an event count with a max, …): everyone must be tested."""
        return _rises_through(self.definition)

    def event_names(self) -> set[str]:
        """The events its conditions count."""
        return set(_event_names(self.definition))

    def computed_names(self) -> set[str]:
        """The computed values its conditions read."""
        return set(_field_names(self.definition, "computed"))

    def reads_traits(self) -> bool:
        """True when a condition reads a trait."""
        return any(True for _ in _field_names(self.definition, "trait"))

    def computed_keys(self) -> set[str]:
        """The keys of the profile's computed values (profiles/state.py `computed`) its
        conditions read: what a caller testing many profiles needs to work out."""
        keys = {COMPUTED[name] for name in self.computed_names()}
        if any(True for _ in _field_names(self.definition, "subscribed")):
            keys.add("subscriptions")
        if any(True for _ in _field_names(self.definition, "consent")):
            keys.add("consent")
        return keys


def _time_dependent(node: Any) -> bool:
    return bool(_time_moves(node))


FALLS = "falls"
"""Time alone can turn a condition from true to false (`within`: the value or the events
age out of the window)."""
RISES = "rises"
"""Time alone can turn a condition from false to true (`older_than`)."""


def _time_moves(node: Any, negated: bool = False) -> set[str]:
    """How time alone (no event) can move the truth of a condition: FALLS, RISES, both or
    neither. `all` and `any` move the way their parts do; `not` the other way."""
    if isinstance(node, list):
        return set().union(*(_time_moves(v, negated) for v in node))
    if not isinstance(node, dict):
        return set()
    moves: set[str] = set()
    for key in ("all", "any"):
        if key in node:
            moves |= _time_moves(node[key], negated)
    if "not" in node:
        moves |= _time_moves(node["not"], not negated)
    if moves or any(key in node for key in ("all", "any", "not")):
        return moves
    if "within" in node:
        moves.add(FALLS)
        if "event" in node and node.get("max") is not None:
            moves.add(RISES)  # fewer events in the window can bring the count under max
    if "older_than" in node:
        moves.add(RISES)
    if negated:
        moves = {RISES if m == FALLS else FALLS for m in moves}
    return moves


_COLUMNS = {"last_seen": "last_seen"}
"""Computed time values with an indexed column of their own in the profiles table."""


def _rises_through(node: Any, negated: bool = False) -> list[tuple[str, int]] | None:
    if isinstance(node, list):
        out: list[tuple[str, int]] = []
        for item in node:
            part = _rises_through(item, negated)
            if part is None:
                return None
            out += part
        return out
    if not isinstance(node, dict):
        return []
    if any(key in node for key in ("all", "any", "not")):
        parts = [_rises_through(node[k], negated) for k in ("all", "any") if k in node]
        if "not" in node:
            parts.append(_rises_through(node["not"], not negated))
        if any(p is None for p in parts):
            return None
        return [r for p in parts if p is not None for r in p]
    if RISES not in _time_moves(node, negated):
        return []
    column = _COLUMNS.get(node.get("computed", ""))
    op = "within" if "within" in node else "older_than"
    if column is None or op not in node:
        return None
    return [(column, duration_ms(node[op], op))]


def _field_names(node: Any, field: str) -> Iterator[str]:
    if isinstance(node, dict):
        if field in node:
            yield node[field]
        for key in ("all", "any", "not"):
            if key in node:
                yield from _field_names(node[key], field)
    elif isinstance(node, list):
        for item in node:
            yield from _field_names(item, field)


def _event_names(node: Any) -> Iterator[str]:
    return _field_names(node, "event")


class _Checker:
    """Collects every problem of a segments document, each with its field path."""

    def __init__(self) -> None:
        self.problems: list[tuple[FieldPath, str]] = []

    def error(self, path: FieldPath, message: str) -> None:
        self.problems.append((path, message))

    def duration(self, value: Any, path: FieldPath) -> None:
        try:
            duration_ms(value, "")
        except SegmentError:
            self.error(path, f"a duration like 7d, 12h or 30m, not {value!r}")

    def ops(self, cond: dict[str, Any], path: FieldPath, allowed: tuple[str, ...]) -> None:
        ops = [k for k in cond if k in allowed]
        if len(ops) != 1:
            self.error(path, f"exactly one operator of {', '.join(allowed)} is needed")
            return
        op = ops[0]
        here = (*path, op)
        if op in ("in", "not_in") and not isinstance(cond[op], list):
            self.error(here, f"{op} needs a list")
        if op in ("gt", "gte", "lt", "lte") and (
                isinstance(cond[op], bool) or not isinstance(cond[op], int | float | str)):
            self.error(here, f"{op} needs a number or a string")
        if op == "exists" and not isinstance(cond[op], bool):
            self.error(here, "exists needs true or false")
        if op in TIME_OPS:
            self.duration(cond[op], here)

    def unknown(self, node: dict[str, Any], path: FieldPath, allowed: set[str]) -> None:
        for extra in sorted(set(map(str, node)) - allowed):
            self.error((*path, extra), f"unknown field {extra}")

    def named(self, node: dict[str, Any], name: Any, path: FieldPath) -> None:
        """A stage or churn risk is compared with one of its names (a typo matches nobody)."""
        names = NAMED_VALUES.get(name) if isinstance(name, str) else None
        if names is None:
            return
        for op in ("eq", "ne", "in", "not_in"):
            if op not in node:
                continue
            values = node[op] if isinstance(node[op], list) else [node[op]]
            for value in values:
                if value not in names:
                    self.error((*path, op), f"{name} is one of {', '.join(names)}, "
                                            f"not {value!r}")
        for op in ("gt", "gte", "lt", "lte", "contains"):
            if op in node:
                self.error((*path, op), f"{name} is a name; use eq, ne, in or not_in")

    def condition(self, node: Any, path: FieldPath) -> dict[str, Any]:
        if not isinstance(node, dict):
            self.error(path, "a condition must be a mapping")
            return {}
        for group in ("all", "any"):
            if group in node:
                if set(node) != {group}:
                    self.error(path, f"'{group}' must stand alone")
                items = node[group]
                if not isinstance(items, list) or not items:
                    self.error((*path, group), "a non-empty list of conditions")
                    return {group: []}
                return {group: [self.condition(c, (*path, group, i))
                                for i, c in enumerate(items)]}
        if "not" in node:
            if set(node) != {"not"}:
                self.error(path, "'not' must stand alone")
            return {"not": self.condition(node["not"], (*path, "not"))}
        if "trait" in node:
            if not isinstance(node["trait"], str) or not node["trait"]:
                self.error((*path, "trait"), "a trait name")
            self.ops(node, path, OPS)
            self.unknown(node, path, {"trait", *OPS})
        elif "computed" in node:
            name = node["computed"]
            if name not in COMPUTED:
                self.error((*path, "computed"),
                           f"one of {', '.join(sorted(COMPUTED))}, not {name!r}")
            allowed = OPS + TIME_OPS if name in TIME_FIELDS else OPS
            self.ops(node, path, allowed)
            self.unknown(node, path, {"computed", *allowed})
            self.named(node, name, path)
        elif "event" in node:
            self.event(node, path)
        elif "subscribed" in node or "consent" in node:
            key = "subscribed" if "subscribed" in node else "consent"
            if not isinstance(node[key], str) or not node[key]:
                self.error((*path, key), "a channel or category name")
            self.unknown(node, path, {key})
        else:
            self.error(path, "a condition needs one of all, any, not, trait, computed, "
                             "event, subscribed, consent")
        return dict(node)

    def event(self, node: dict[str, Any], path: FieldPath) -> None:
        if not isinstance(node["event"], str) or not node["event"]:
            self.error((*path, "event"), "an event name")
        for bound in ("min", "max"):
            value = node.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                self.error((*path, bound), "a whole number ≥ 0")
        if "within" in node:
            self.duration(node["within"], (*path, "within"))
        where_props = node.get("where", {})
        if not isinstance(where_props, dict):
            self.error((*path, "where"), "a mapping of property: value")
        else:
            for prop, test in where_props.items():
                if isinstance(test, dict):
                    self.ops(test, (*path, "where", str(prop)), OPS)
        self.unknown(node, path, {"event", "min", "max", "within", "where"})

    def segments(self, data: Any) -> list[Segment]:
        path: FieldPath = ()
        if isinstance(data, dict):
            path = ("segments",)
            data = data.get("segments")
        if not isinstance(data, list):
            self.error(path or ("segments",), "a list of segments is required")
            return []
        out: list[Segment] = []
        seen: set[str] = set()
        for i, item in enumerate(data):
            here = (*path, i)
            if not isinstance(item, dict):
                self.error(here, "a mapping is required")
                continue
            name = item.get("name")
            if not isinstance(name, str) or not _NAME.match(name):
                self.error((*here, "name"), "letters, digits, '_', '-', '.' (≤100)")
                name = f"#{i}"
            elif name in seen:
                self.error((*here, "name"), f"{name!r} is defined twice")
            seen.add(name)
            groups = [k for k in ("all", "any") if k in item]
            self.unknown(item, here, {"name", "description", "all", "any"})
            if len(groups) != 1:
                self.error(here, "conditions go under exactly one of all / any")
                continue
            condition = self.condition({groups[0]: item[groups[0]]}, here)
            definition = {"description": str(item.get("description") or ""), **condition}
            out.append(Segment(name, definition))
        return out


def _raise(problems: list[tuple[FieldPath, str]], source: str, lines: Lines | None) -> None:
    if not problems:
        return
    found = [Problem(source, lines.line(p) if lines else None, where(p), m)
             for p, m in problems]
    found.sort(key=lambda p: (p.line or 0, p.where))
    raise SegmentError("\n".join(str(p) for p in found), found)


def parse_segments(data: Any, *, source: str = "<segments>", lines: Lines | None = None
                   ) -> list[Segment]:
    """Validate a parsed segments document; SegmentError lists every problem, each with
    its field (and line, given the document's `lines`)."""
    checker = _Checker()
    segments = checker.segments(data)
    _raise(checker.problems, source, lines)
    return segments


def parse_condition(node: Any) -> dict[str, Any]:
    """Validate one condition (a journey's `if:`, a trigger's `where`);
    SegmentError's problems name fields relative to the condition."""
    checker = _Checker()
    condition = checker.condition(node, ())
    _raise(checker.problems, "", None)
    return condition


def condition_problems(node: Any) -> tuple[dict[str, Any] | None, list[tuple[FieldPath,
                                                                             str]]]:
    """Check one condition and say what is wrong with it: (the condition, or None when
    it has problems; (field path relative to the condition, message) of each)."""
    checker = _Checker()
    condition = checker.condition(node, ())
    return (None if checker.problems else condition), checker.problems


def load_segments_file(path: str | Path) -> list[Segment]:
    """Read and validate a segments file (.yml/.yaml/.json); SegmentError lists every
    problem as FILE:LINE: FIELD: WHAT (an ambiguous unquoted YAML value is one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SegmentError(f"{path}: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = Problem(str(path), exc.lineno, "", f"invalid JSON: {exc.msg}")
            raise SegmentError(str(problem), [problem]) from None
        return parse_segments(data, source=str(path))
    document = yamlfile.read(text, source=str(path))
    checker = _Checker()
    segments = checker.segments(document.data) if document.data is not None or \
        not document.problems else []
    found = yamlfile.combine(document.problems, [
        Problem(str(path), document.lines.line(p), where(p), m) for p, m in checker.problems])
    if found:
        raise SegmentError("\n".join(str(p) for p in found), found)
    return segments


# -- evaluation -------------------------------------------------------------------------

EventSource = Callable[[str, int], Iterator[dict[str, Any]]]
"""(event name, since ms) → the bodies of the profile's matching track events."""
EventCount = Callable[[str, int], int]
"""(event name, since ms) → how many of the profile's track events EventSource yields."""


def _window_ms(value: Any, where: str) -> int:
    """`duration_ms` of a definition's window, worked out once, not once per profile
    tested."""
    try:
        return _cached_duration_ms(value, where)
    except TypeError:  # unhashable: not a duration; duration_ms says so
        return duration_ms(value, where)


_cached_duration_ms = functools.lru_cache(maxsize=256, typed=True)(duration_ms)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not None) == expected
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected.lower() in actual.lower()
        return isinstance(actual, list) and expected in actual
    if actual is None or isinstance(actual, bool):
        return False
    try:
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        if op == "lte":
            return bool(actual <= expected)
    except TypeError:
        return False
    raise SegmentError(f"unknown operator {op}")  # pragma: no cover - validated


def _test(cond: dict[str, Any], actual: Any, now_ms: int) -> bool:
    for op in TIME_OPS:
        if op in cond:
            if not isinstance(actual, int | float):
                return False
            edge = now_ms - _window_ms(cond[op], op)
            return actual >= edge if op == "within" else actual < edge
    for op in OPS:
        if op in cond:
            return _compare(op, actual, cond[op])
    return False


@dataclass
class ProfileView:
    """What segment conditions read about one profile."""

    traits: dict[str, Any]
    computed: dict[str, Any]
    events: EventSource
    count: EventCount | None = None
    """Counts the events without reading them: for event conditions without `where`
    (a caller testing many profiles counts in the database)."""


def matches(node: dict[str, Any], view: ProfileView, now_ms: int) -> bool:
    """True when the profile satisfies the condition tree `node`."""
    if "all" in node:
        return all(matches(c, view, now_ms) for c in node["all"])
    if "any" in node:
        return any(matches(c, view, now_ms) for c in node["any"])
    if "not" in node:
        return not matches(node["not"], view, now_ms)
    if "trait" in node:
        return _test(node, view.traits.get(node["trait"]), now_ms)
    if "computed" in node:
        return _test(node, view.computed.get(COMPUTED[node["computed"]]), now_ms)
    if "subscribed" in node:
        channel, _, topic = node["subscribed"].partition("/")
        slot = view.computed.get("subscriptions", {}).get(channel, {})
        if slot.get("subscribed") is False:
            return False
        return not topic or slot.get("topics", {}).get(topic) is not False
    if "consent" in node:
        return view.computed.get("consent", {}).get(node["consent"]) is True
    if "event" in node:
        since = now_ms - _window_ms(node["within"], "within") if "within" in node else 0
        wanted = node.get("where", {})
        low = node.get("min", 1)
        high = node.get("max")
        if not wanted and view.count is not None:
            count = view.count(node["event"], since)
            return count >= low and (high is None or count <= high)
        count = 0
        for body in view.events(node["event"], since):
            props = body.get("properties")
            if not isinstance(props, dict):
                props = {}
            if all(_prop_ok(props.get(k), t, now_ms) for k, t in wanted.items()):
                count += 1
                if high is None and count >= low:
                    return True
        return count >= low and (high is None or count <= high)
    raise SegmentError(f"unknown condition {node!r}")  # pragma: no cover - validated


def _prop_ok(actual: Any, test: Any, now_ms: int) -> bool:
    if isinstance(test, dict):
        return _test(test, actual, now_ms)
    if isinstance(actual, str) and isinstance(test, str):
        return actual.lower() == test.lower()
    return bool(actual == test)
