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

