"""The processor step of journeys: events start runs, resolve waits and reach goals.

It runs after the profiles and segments steps, inside the processor's transaction, so
every event already points at its profile. Only track events whose name some journey
version names (trigger, wait-for, goal) are looked at. Events flagged
`properties.bot = true` never count, and Kanal's own events (deliveries, opens, segment
changes) only when a journey names them explicitly.

History is not now (gate.py): a trigger event starts a run only when it was at most
its trigger's `max_age` old at receipt and not from before the journey was first
enabled (less that grace); imported rows start none unless imported with `--trigger`.
Refused trigger events are counted per journey, reason and hour (journey_refusals).
Once a run has started, time is receipt time: "wait 1h" after a trigger is an hour
after the trigger arrived, even when the processor is catching up.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..clock import Clock
from ..store import journeys as store
from ..store import orders as order_store
from ..store.connection import Connection
from ..store.events import StoredEvent
from .evaluator import Evaluator
from .gate import Refusal, history_refusal


class JourneysStep:
    """Applies each batch of events to the journeys (after profiles and segments)."""

    name = "journeys"

    def __init__(self, clock: Clock | None = None, *,
                 evaluator: Evaluator | None = None) -> None:
        self.evaluator = evaluator or Evaluator(clock=clock)
        self._names: set[str] = set()
        self._window = 0
        self._versions_seen = -1

    def _refresh_names(self, conn: Connection) -> None:
        versions = store.all_versions(conn)
        if len(versions) == self._versions_seen:
            return
        names: set[str] = set()
        window = 0
        for name, version in versions:
            journey = self.evaluator.journey(conn, name, version)
            names |= journey.named_events()
            if journey.goal and journey.goal.get("within_ms"):
                window = max(window, int(journey.goal["within_ms"]))
        self._names, self._window, self._versions_seen = names, window, len(versions)

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Start runs, resolve waits and goals for the batch's events."""
        if store.stamp(conn)[0] == 0:
            return  # no journey was ever loaded
        self._refresh_names(conn)
        wanted = [e for e in events if e.type == "track" and e.event in self._names
                  and not _is_bot(e)]
        # A second copy of an order (the snippet's and the backend's) is no new order.
        repeats = order_store.repeats(conn, [e.id for e in wanted])
        wanted = [e for e in wanted if e.id not in repeats]
        if not wanted:
            return
        owners = store.profiles_of_events(conn, [e.id for e in wanted])
        if not owners:
            return
        earliest = min(e.received_at for e in wanted)
        runs = store.runs_of_profiles(conn, set(owners.values()), earliest - self._window)
        current = self.evaluator.current(conn)
        refused: dict[tuple[str, str, int], int] = {}
        for event in wanted:
            pid = owners.get(event.id)
            if pid is None:
                continue
            at = event.received_at
            mine = runs.setdefault(pid, [])
            for run in list(mine):
                self.evaluator.on_event(conn, run, event.id, event.event, event.body, at)
            for journey, version in current:
                trigger = journey.matching_trigger(event.event, event.body)
                if trigger is None:
                    continue
                entered: store.Run | Refusal | None = history_refusal(
                    event, trigger, self.evaluator.first_enabled(conn, journey.name))
                if entered is None:
                    entered = self.evaluator.enter(conn, journey, version, pid, now=at,
                                                   event_id=event.id, body=event.body,
                                                   trusted=event.verified)
                if isinstance(entered, Refusal):
                    key = (journey.name, entered.code, at // store.HOUR_MS)
                    refused[key] = refused.get(key, 0) + 1
                else:
                    mine.append(entered)
        if refused:
            store.count_refusals(conn, refused)
        order_store.settle_conversions(conn, [e.id for e in wanted])


def _is_bot(event: StoredEvent) -> bool:
    props = event.body.get("properties")
    return isinstance(props, dict) and props.get("bot") is True
