"""The compiled form of a journey file: `Journey` (one version) and its `Step`s.

definition.py reads and validates the files into these; the evaluator, `why` and
`simulate` read them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..profiles.segments import ProfileView, matches


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
    triggers: tuple[Mapping[str, Any], ...]
    """What starts a run: one or more event or segment triggers, or one schedule."""
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
    group: str | None = None
    """A name several journeys share, so that others can exclude them all at once."""
    exclude_journeys: tuple[str, ...] = ()
    """No new run while the person is in a run of one of these journeys."""
    exclude_groups: tuple[str, ...] = ()
    """No new run while the person is in a run of a journey of one of these groups."""

    @property
    def hash(self) -> str:
        """The version's identity: a hash of the file's text."""
        return content_hash(self.text)

    def messages(self) -> set[str]:
        """The message names its send steps use."""
        return {str(s.spec["message"]) for s in self.steps.values() if s.kind == "send"}

    @property
    def trigger(self) -> Mapping[str, Any]:
        """The first trigger (the only one of a scheduled journey)."""
        return self.triggers[0] if self.triggers else {}

    def matching_trigger(self, event: str | None,
                         body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The first trigger an event (name and body) matches, or None."""
        for trigger in self.triggers:
            if trigger_matches(trigger, event, body):
                return trigger
        return None

    def trigger_matches(self, event: str | None, body: Mapping[str, Any]) -> bool:
        """True when an event (name and body) triggers this journey."""
        return self.matching_trigger(event, body) is not None

    def trigger_events(self) -> set[str]:
        """The event names its triggers start on ("Segment Entered" for segments)."""
        names = set()
        for trigger in self.triggers:
            if "event" in trigger:
                names.add(str(trigger["event"]))
            elif "segment" in trigger:
                names.add("Segment Entered")
        return names

    def named_events(self) -> set[str]:
        """Every event name the journey reacts to (triggers, waits, goal)."""
        names = self.trigger_events()
        if self.goal:
            names.add(str(self.goal["event"]))
        for step in self.steps.values():
            if step.kind == "wait_for":
                names.add(str(step.spec["event"]))
        return names

    def sends(self) -> list[Step]:
        """Its send steps."""
        return [s for s in self.steps.values() if s.kind == "send"]


def trigger_matches(trigger: Mapping[str, Any], event: str | None,
                    body: Mapping[str, Any]) -> bool:
    """True when an event (name and body) matches one event or segment trigger."""
    if "event" in trigger:
        return event == trigger["event"] and event_matches(
            {"event": trigger["event"], "where": trigger.get("where", {})}, body)
    if "segment" in trigger:
        props = body.get("properties")
        return (event == "Segment Entered" and isinstance(props, dict)
                and props.get("segment") == trigger["segment"])
    return False


def content_hash(text: str) -> str:
    """The version hash of a journey file's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def event_matches(condition: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """True when one event body passes `{"event": …, "where": …}` (segment semantics)."""

    def events(name: str, since: int) -> Iterator[dict[str, Any]]:
        return iter([dict(body)])

    return matches(dict(condition), ProfileView({}, {}, events), 0)

