"""Journey funnels: runs entered → messages sent → delivered → opened → clicked → converted.

Counted over the runs that entered in the window ([since_ms, until_ms), either side may
be open), whatever happened to them later:

    entered    runs that started
    active     of those, runs still going
    sent       outbox rows their send steps queued that were sent
    delivered  sent rows with a delivery event ("Email Delivered", "SMS Delivered" from
               the provider's callback, "Push Notification Sent", "Webhook Delivered",
               "Message Delivered", "On-site Message Delivered")
    opened     sent rows with an "Email Opened" event (opens flagged as a bot — link
               scanners, mail-privacy proxies — are not counted), or an on-site message
               shown ("On-site Message Shown")
    clicked    sent rows with an "Email Link Clicked" event (bots not counted either),
               "On-site Message Clicked" or "Push Notification Clicked" (web push)
    converted  runs that reached the journey's goal; revenue is the sum of theirs

Per step, `reached` is the runs that got to the step. The run log names most steps a
run took; a run that passed a wait leaves no line for it, so a run counts as having
reached every step on the way to a step it is known to have reached (steps of a list
run in order, and a branch is entered only through its step). Send steps also get
sent / delivered / opened / clicked; every step gets the conversions and revenue of the
runs that reached it.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..journeys.definition import Journey, parse_journey
from ..journeys.errors import JourneyFileError
from ..store import journeys as journey_store
from ..store import reports as store
from ..store.connection import Connection
from ..store.engagement import CLICKED_EVENTS, DELIVERED_EVENTS, OPENED_EVENTS, STAGES

__all__ = ["CLICKED_EVENTS", "DELIVERED_EVENTS", "OPENED_EVENTS", "Definitions",
           "check_window", "journey_funnel", "journeys_summary", "money", "tree"]

log = logging.getLogger("kanal.reports")



def check_window(since_ms: int | None, until_ms: int | None) -> None:
    """ValueError (naming the argument) for a bound that is no whole number of ms, or
    an `until_ms` before `since_ms`."""
    for value, name in ((since_ms, "since_ms"), (until_ms, "until_ms")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} must be epoch milliseconds (an int) or None, "
                             f"not {value!r}")
    if since_ms is not None and until_ms is not None and until_ms < since_ms:
        raise ValueError(f"until_ms ({until_ms}) must not be before since_ms ({since_ms})")


def money(value: float) -> float:
    """An amount of money as reports show it (2 decimals)."""
    return round(float(value), 2)


# -- journey definitions ------------------------------------------------------------------

@dataclass
class Tree:
    """The steps of one journey version in file order, and how each is reached."""

    journey: Journey | None
    order: list[str] = field(default_factory=list)
    path: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """step → the steps a run has taken when it gets there (the step itself last)."""

    def passed(self, step: str) -> tuple[str, ...]:
        """The steps a run that reached `step` has reached (just the step if unknown)."""
        return self.path.get(step, (step,))


def tree(journey: Journey | None) -> Tree:
    """Walk a journey's step tree in file order (a step, then its branches, then the
    step after it)."""
    out = Tree(journey)
    if journey is None:
        return out
    steps = journey.steps

    def walk(start: str | None, cont: str | None, above: tuple[str, ...]) -> None:
        passed = above
        current = start
        while current is not None and current != cont and current in steps \
                and current not in out.path:
            step = steps[current]
            out.order.append(current)
            out.path[current] = (*passed, current)
            for branch in step.branches.values():
                walk(branch, step.next, (*passed, current))
            passed = (*passed, current)
            current = step.next

    walk(journey.first, None, ())
    return out


class Definitions:
    """Parsed versions of journeys, read from the database as needed."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._trees: dict[tuple[str, int], Tree] = {}
        self.current = {name: (version, enabled)
                        for name, version, enabled in journey_store.current(conn)}

    def tree(self, journey: str, version: int) -> Tree:
        """The step tree of one version (empty when it can't be read)."""
        key = (journey, version)
        if key not in self._trees:
            text = journey_store.version_text(self.conn, journey, version)
            parsed: Journey | None = None
            if text is not None:
                try:
                    parsed = parse_journey(text, source=f"{journey} v{version}", name=journey,
                                           strict=False)
                except JourneyFileError as exc:
                    # A version stored by an older Kanal that today's rules reject: its
                    # steps are still counted, only their order and kinds are unknown.
                    log.warning("journey %s version %s can't be read: %s", journey,
                                version, exc)
            self._trees[key] = tree(parsed)
        return self._trees[key]

    def versions_newest_first(self, journey: str, extra: Iterable[int] = ()) -> list[Tree]:
        """The current version's tree first, then the others that runs use, newest first."""
        current = self.current.get(journey, (None, False))[0]
        numbers = sorted(set(extra) - {current}, reverse=True)
        if current is not None:
            numbers.insert(0, current)
        return [self.tree(journey, n) for n in numbers]


# -- counting -----------------------------------------------------------------------------
# The database sums the runs (store/reports.py): runs that left the same traces in the
# same version reached the same steps, so each such group is counted once here.

def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


_NO_SENDS = (0, 0, 0, 0)


def _totals(name: str, enabled: bool, runs: tuple[int, int, int, float],
            sends: Sequence[tuple[int, int, int, int]]) -> dict[str, Any]:
    entered, active, converted, revenue = runs
    summed = [sum(s[i] for s in sends) for i in range(4)]
    return {
        "journey": name, "enabled": enabled, "entered": entered, "active": active,
        "sent": summed[0],
        **{stage: summed[i + 1] for i, (stage, _) in enumerate(STAGES)},
        "converted": converted, "revenue": money(revenue),
        "conversion_rate": _rate(converted, entered),
    }


def journeys_summary(conn: Connection, *, since_ms: int | None = None,
                     until_ms: int | None = None) -> list[dict[str, Any]]:
    """Every known journey's funnel totals for the runs that entered in the window,
    by journey name."""
    check_window(since_ms, until_ms)
    runs = store.journey_totals(conn, since_ms=since_ms, until_ms=until_ms)
    sends: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    for name, _, n, d, o, c in store.send_counts(conn, journey=None, since_ms=since_ms,
                                                 until_ms=until_ms):
        sends[name].append((n, d, o, c))
    return [_totals(name, enabled, runs.get(name, (0, 0, 0, 0.0)), sends[name])
            for name, _, enabled in journey_store.current(conn)]


def journey_funnel(conn: Connection, journey: str, *, since_ms: int | None = None,
                   until_ms: int | None = None) -> dict[str, Any]:
    """One journey's funnel: its totals and every step's numbers, steps in file order
    (the current version's, then steps only older versions have). LookupError for a
    journey Kanal doesn't know."""
    check_window(since_ms, until_ms)
    definitions = Definitions(conn)
    if journey not in definitions.current:
        raise LookupError(f"no journey named {journey!r}")
    enabled = definitions.current[journey][1]
    window: dict[str, Any] = {"journey": journey, "since_ms": since_ms,
                              "until_ms": until_ms}
    versions = store.window_versions(conn, **window)
    trees = definitions.versions_newest_first(journey, versions)
    steps = list(dict.fromkeys(s for t in trees for s in t.order))
    groups = store.run_groups(conn, steps=steps, **window)
    if any(g[5] for g in groups):  # the log names steps no stored version has
        logged = store.logged_step_names(conn, **window)
        steps += sorted(logged - set(steps))
        groups = store.run_groups(conn, steps=steps, **window)

    reached: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    revenue: defaultdict[str, float] = defaultdict(float)
    entered = active = won = 0
    won_revenue = 0.0
    for version, current, is_active, is_won, named, _, runs, earned in groups:
        traces = set(named)
        if current:
            traces.add(current)
        version_tree = definitions.tree(journey, version)
        entered += runs
        active += runs if is_active else 0
        if is_won:
            won += runs
            won_revenue += earned
        for step in {p for t in traces for p in version_tree.passed(t)}:
            reached[step] += runs
            if is_won:
                converted[step] += runs
                revenue[step] += earned

    # Versions without a send step queued nothing (a version that can't be read might).
    sending = any(t.journey is None or any(st.kind == "send" for st in t.journey.steps.values())
                  for t in trees)
    sends = {step: (n, d, o, c) for _, step, n, d, o, c
             in (store.send_counts(conn, **window) if sending else [])}
    rows = []
    for step_id in _step_order(trees, set(reached) | set(sends)):
        spec = next((t.journey.steps[step_id] for t in trees
                     if t.journey is not None and step_id in t.journey.steps), None)
        kind = None if spec is None else spec.kind
        is_send = kind == "send"
        sent = sends.get(step_id, _NO_SENDS)
        rows.append({
            "step": step_id, "kind": kind,
            "message": str(spec.spec["message"]) if spec is not None and is_send else None,
            "channel": str(spec.spec["channel"]) if spec is not None and is_send else None,
            "reached": reached[step_id],
            "sent": sent[0],
            **{stage: sent[i + 1] for i, (stage, _) in enumerate(STAGES)},
            "converted": converted[step_id],
            "revenue": money(revenue[step_id]),
        })
    totals = _totals(journey, enabled, (entered, active, won, won_revenue),
                     list(sends.values()))
    return {"journey": journey, "totals": totals, "steps": rows}


def _step_order(trees: Sequence[Tree], used: set[str]) -> list[str]:
    """The current version's steps in file order, then steps of older versions that a
    run in the window used, then any step no stored version names (sorted)."""
    order: list[str] = []
    listed: set[str] = set()
    for i, version in enumerate(trees):
        for step in version.order:
            if step not in listed and (i == 0 or step in used):
                order.append(step)
                listed.add(step)
    order += sorted(used - listed)
    return order
