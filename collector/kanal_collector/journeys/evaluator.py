"""The rule evaluator: moves runs through their steps, inside the caller's transaction.

The processor's journeys step (step.py) calls it for events: new runs, wait-for-event
resolutions, goals. The timer worker (timers.py) calls it for due timers and schedules.
Both hand it a connection inside a write transaction; nothing here commits, so a run
moves exactly as far as the transaction that moved it, and a crash replays nothing
twice. Sends go through `messages.enqueue` with the key `journey:NAME:RUN:STEP`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ..audiences.journey import run_ended, take_step
from ..clock import Clock, SystemClock, utc_iso
from ..errors import KanalError
from ..localtime import UTC_NAME, Window, zone, zone_name
from ..messages.enqueuing import enqueue, enqueue_failed
from ..money import order_revenue
from ..profiles.segments import ProfileView, matches
from ..profiles.state import computed, traits_of
from ..profiles.step import KANAL_KEY_KIND, apply_own_traits
from ..store import identities as identity_store
from ..store import journeys as store
from ..store import predict as predict_store
from ..store import profiles as profile_store
from ..store import timeline as timeline_store
from ..store.connection import Connection
from ..store.events import EventRow, append_events, event_row
from ..store.onsite import queue_expiry
from .definition import Journey, Step, event_matches, parse_journey
from .errors import JourneyError
from .gate import Refusal

log = logging.getLogger("kanal.journeys")

MAX_STEPS_AT_ONCE = 200
"""Steps one advance may take without waiting (a guard; the step tree has no loops)."""
WEBHOOK_ATTEMPTS = 5
_CONTEXT_LIMIT = 8_000
# Why a trigger started no run (beside the history codes of gate.py and `no_match`,
# `bot`, `disabled`, `before_journey` that only `why` tells apart).
EXCLUDED = "excluded"
ALREADY_ACTIVE = "already_active"
ONCE = "once"
ONCE_PER = "once_per"
NO_DEDUPE_KEY = "no_dedupe_key"
DEDUPLICATED = "deduplicated"


def outbox_key(journey: str, run_id: int, step_id: str) -> str:
    """The idempotency key of a send step of a run."""
    return f"journey:{journey}:{run_id}:{step_id}"


def properties(body: Mapping[str, Any]) -> dict[str, Any]:
    """An event body's properties (an empty mapping when absent)."""
    props = body.get("properties")
    return dict(props) if isinstance(props, dict) else {}


class Evaluator:
    """Starts, advances and ends runs. Shared by the journeys step and the timer worker."""

    def __init__(self, *, clock: Clock | None = None, channels: Mapping[str, Any] | None = None,
                 catalog: Any = None, default_timezone: str = UTC_NAME) -> None:
        self.clock = clock or SystemClock()
        self.default_timezone = zone(default_timezone).key
        """The zone of a wait_window for people without one (`[journeys] default_timezone`)."""
        self.channels = channels
        self.catalog = catalog
        self._versions: dict[tuple[str, int], Journey] = {}
        self._stamp: tuple[int, str] | None = None
        self._current: list[tuple[Journey, int]] = []
        self._groups: dict[str, str] = {}
        self._first_enabled: dict[str, int | None] = {}

    # -- definitions --------------------------------------------------------------------

    def journey(self, conn: Connection, name: str, version: int) -> Journey:
        """The definition a run is pinned to (parsed once, then cached)."""
        key = (name, version)
        if key not in self._versions:
            text = store.version_text(conn, name, version)
            if text is None:
                raise JourneyError(f"journey {name!r} has no version {version}")
            self._versions[key] = parse_journey(text, source=f"{name} v{version}", name=name,
                                                    strict=False)
        return self._versions[key]

    def current(self, conn: Connection) -> list[tuple[Journey, int]]:
        """The enabled journeys at their current versions."""
        self._refresh(conn)
        return self._current

    def first_enabled(self, conn: Connection, name: str) -> int | None:
        """When a journey was first enabled (ms), None if never."""
        self._refresh(conn)
        return self._first_enabled.get(name)

    def _refresh(self, conn: Connection) -> None:
        stamp = store.stamp(conn)
        if stamp == self._stamp:
            return
        out = []
        groups: dict[str, str] = {}
        for name, version, enabled in store.current(conn):
            journey = self.journey(conn, name, version)
            if journey.group:
                groups[name] = journey.group
            if enabled:
                out.append((journey, version))
        self._current, self._groups = out, groups
        self._first_enabled = store.first_enabled(conn)
        self._stamp = stamp

    # -- entering -----------------------------------------------------------------------

    def enter(self, conn: Connection, journey: Journey, version: int, profile_id: int,
              *, now: int, event_id: int | None = None,
              body: Mapping[str, Any] | None = None,
              trusted: bool = True) -> store.Run | Refusal:
        """Start a run when the entry rules allow it, and take its first steps.

        Returns the run, or why none started (the same codes `kanal journeys why`
        recomputes: refusals.py). `trusted` says whether the trigger was trusted data
        (the run keeps it: links in its messages may be aimed by it).
        """
        refusal = self.entry_refusal(conn, journey, profile_id, now=now, body=body)
        if refusal is not None:
            return refusal
        props = properties(body or {})
        dedupe = str(props[journey.entry["dedupe"]]) if journey.entry.get("dedupe") else None
        context: dict[str, Any] = {"event": _trimmed(props)}
        run = store.create_run(conn, store.NewRun(journey.name, version, profile_id, dedupe,
                                                  event_id, context, trusted), now)
        if run is None:
            return Refusal(DEDUPLICATED, {"value": dedupe})
        store.log(conn, run.id, now, None, "entered",
                  {"version": version, "event_id": event_id, "trusted": trusted})
        self.advance(conn, run, journey, journey.first, now)
        return run

    def entry_refusal(self, conn: Connection, journey: Journey, profile_id: int, *,
                      now: int, body: Mapping[str, Any] | None) -> Refusal | None:
        """Why the entry rules, the dedupe key or an exclusion keep a person out, or None.

        With a dedupe key, runs are per key value: a value starts at most one run, ever,
        and runs of different values go on side by side (so `once` and `every_time`
        both mean one run per value); `once_per` still spaces the person's runs.
        Without one, a person is in at most one run at a time, and `once` is once ever.
        """
        entry = journey.entry
        rule = entry.get("rule", "once")
        key = entry.get("dedupe")
        excluded = self._excluded_by(conn, journey, profile_id)
        if excluded is not None:
            return Refusal(EXCLUDED, {"journey": excluded[0], "run_id": excluded[1]})
        count, last, active = store.entry_history(conn, journey.name, profile_id)
        if not key and active:
            return Refusal(ALREADY_ACTIVE)  # one run of a journey per person at a time
        if not key and rule == "once" and count:
            return Refusal(ONCE)
        if rule == "once_per" and last is not None and now - last < int(entry["period_ms"]):
            return Refusal(ONCE_PER, {"last": last})
        if key:
            value = properties(body or {}).get(key)
            if value is None or isinstance(value, dict | list):
                return Refusal(NO_DEDUPE_KEY)  # a dedupe journey needs the key on its event
            if store.dedupe_used(conn, journey.name, profile_id, str(value)):
                return Refusal(DEDUPLICATED, {"value": str(value)})
        return None

    def _excluded_by(self, conn: Connection, journey: Journey,
                     profile_id: int) -> tuple[str, int] | None:
        """(journey, run id) of a run of the person that excludes entering, or None."""
        if not journey.exclude_journeys and not journey.exclude_groups:
            return None
        self._refresh(conn)
        names = set(journey.exclude_journeys)
        names |= {n for n, g in self._groups.items() if g in journey.exclude_groups}
        names.discard(journey.name)
        found = store.active_runs_in(conn, profile_id, names)
        return found[0] if found else None

    # -- moving -------------------------------------------------------------------------

    def advance(self, conn: Connection, run: store.Run, journey: Journey,
                step_id: str | None, now: int) -> None:
        """Run steps from `step_id` until one waits or the run ends."""
        run.wait_event = None
        for _ in range(MAX_STEPS_AT_ONCE):
            if run.state != store.ACTIVE:
                return
            if step_id is None:
                self.end(conn, run, "completed", "no more steps", now)
                return
            step = journey.steps[step_id]
            run.step = step_id
            nxt = self._take(conn, run, journey, step, now)
            if nxt is _WAIT:
                store.update_run(conn, run, now)
                return
            step_id = nxt if isinstance(nxt, str) or nxt is None else None
        self.end(conn, run, "exited", "too many steps at once", now)

    def _take(self, conn: Connection, run: store.Run, journey: Journey, step: Step,
              now: int) -> str | None | object:
        spec = step.spec
        if step.kind == "wait":
            _set_timer(conn, run, now + int(spec["ms"]), step.id, "wait")
            return _WAIT
        if step.kind == "wait_until":
            when = self._date(conn, run.profile_id, spec)
            if when is None:
                store.log(conn, run.id, now, step.id, "skipped", {"why": "no date"})
                return step.next
            due = when + int(spec.get("offset_ms") or 0)
            if due <= now:
                store.log(conn, run.id, now, step.id, "skipped", {"why": "date passed"})
                return step.next
            _set_timer(conn, run, due, step.id, "wait")
            return _WAIT
        if step.kind == "wait_for":
            run.wait_event = str(spec["event"])
            _set_timer(conn, run, now + int(spec["timeout_ms"]), step.id, "timeout")
            return _WAIT
        if step.kind == "wait_window":
            return self._wait_window(conn, run, step, now)
        if step.kind == "if":
            view = self._view(conn, run.profile_id)
            taken = view is not None and matches(dict(spec["condition"]), view, now)
            store.log(conn, run.id, now, step.id, "condition", {"result": taken})
            return step.branches["then" if taken else "else"]
        if step.kind == "split":
            arm = _arm(run.id, step.id, spec["arms"], float(spec["holdout"]))
            store.assign(conn, run.id, step.id, arm, now)
            store.log(conn, run.id, now, step.id, "assigned", {"arm": arm})
            if arm == "holdout":
                self.end(conn, run, "exited", "holdout", now)
                return None
            return step.branches[arm]
        if step.kind == "send":
            self._send(conn, run, journey, step, now)
            return step.next
        if step.kind == "set_trait":
            self._set_traits(conn, run, step, now)
            return step.next
        if step.kind == "webhook":
            _set_timer(conn, run, now, step.id, "call")
            return _WAIT
        if step.kind == "exit":
            self.end(conn, run, "exited", str(spec.get("reason") or "exit step"), now)
            return None
        if step.kind == "audience":  # ads audiences: a hold, sent by the audience's sync
            store.log(conn, run.id, now, step.id, "audience",
                      take_step(conn, spec, run.profile_id, run.id, now))
            return step.next
        raise JourneyError(f"unknown step kind {step.kind!r}")  # pragma: no cover

    def end(self, conn: Connection, run: store.Run, state: str, reason: str,
            now: int) -> None:
        """End a run; it sends nothing more."""
        run.state = state
        run.wait_event = None
        run.timer = None
        run.ended_at = now
        store.end_run(conn, run, state, reason, now)
        store.log(conn, run.id, now, run.step, state, {"reason": reason})
        run_ended(conn, run.id, now)  # its ads audience holds without `keep` go

    # -- events -------------------------------------------------------------------------

    def on_event(self, conn: Connection, run: store.Run, event_id: int,
                 name: str | None, body: Mapping[str, Any], at: int) -> None:
        """Apply one of the person's events to one of their runs (timers due first)."""
        if (run.state == store.ACTIVE and run.timer is not None and run.timer.due_at < at
                and run.timer.kind != "call"):
            # The timer was due before the event happened: it fires first, so a late
            # processor can't let an order "arrive in time" for a reminder already due.
            self.fire(conn, run, run.timer, run.timer.due_at)
        journey = self.journey(conn, run.journey, run.version)
        goal = journey.goal
        if (goal and name == goal["event"] and not run.converted and event_matches(goal, body)
                and _same(goal.get("same", ()), properties(body), run, missing_matches=True)):
            window = goal.get("within_ms")
            # Without a window only a run still going converts; with one, also a run that
            # ended (ran out of steps, or a holdout) within it of entering.
            if (run.state == store.ACTIVE if window is None
                    else at - run.entered_at <= int(window)):
                props = properties(body)
                revenue = order_revenue(props) if props else None
                if store.add_conversion(conn, run, event_id, str(name), revenue, at):
                    run.converted = True
                    store.log(conn, run.id, at, run.step, "goal",
                              {"event_id": event_id, "revenue": revenue})
            if run.state == store.ACTIVE:
                self.end(conn, run, "converted", f"goal {name}", at)
            return
        if run.state != store.ACTIVE or run.wait_event is None or name != run.wait_event:
            return
        step = journey.steps[str(run.step)]
        if not event_matches({"event": step.spec["event"], "where": step.spec["where"]}, body):
            return
        if not _same(step.spec.get("same", ()), properties(body), run, missing_matches=False):
            return
        store.delete_timer(conn, run.id)
        run.timer = None
        store.log(conn, run.id, at, step.id, "event", {"event_id": event_id})
        self.advance(conn, run, journey, step.branches["event"], at)

    # -- timers -------------------------------------------------------------------------

    def fire(self, conn: Connection, run: store.Run, timer: store.Timer,
             now: int) -> None:
        """A run's timer is due: expire it (past its ttl) or move on."""
        if not store.take_timer(conn, timer):
            return
        run.timer = None
        if run.state != store.ACTIVE or run.step != timer.step:
            return
        journey = self.journey(conn, run.journey, run.version)
        step = journey.steps[timer.step]
        if step.ttl_ms is not None and now - timer.due_at > step.ttl_ms:
            self.end(conn, run, "expired", f"timer {now - timer.due_at} ms late "
                     f"(ttl {step.ttl_ms} ms)", now)
            return
        if timer.kind == "timeout":
            run.wait_event = None
            store.log(conn, run.id, now, step.id, "timeout")
            self.advance(conn, run, journey, step.branches["timeout"], now)
        else:  # a wait, or a webhook call the timer worker has made
            self.advance(conn, run, journey, step.next, now)

    # -- actions ------------------------------------------------------------------------

    def _wait_window(self, conn: Connection, run: store.Run, step: Step,
                     now: int) -> str | None | object:
        """Go on when the person's local now is inside the window, else wait for it."""
        spec = step.spec
        view = self._view(conn, run.profile_id)
        person_zone = view.computed.get("timezone") if view is not None else None
        tz_name = zone_name(person_zone, str(spec.get("timezone") or self.default_timezone))
        tz = zone(tz_name)
        window = Window(int(spec["start"]), int(spec["end"]), frozenset(spec["days"]))
        if window.open_until(now, tz) is not None:
            store.log(conn, run.id, now, step.id, "window",
                      {"timezone": tz_name, "inside": True})
            return step.next
        due = window.next_open(now, tz)
        _set_timer(conn, run, due, step.id, "wait")
        store.log(conn, run.id, now, step.id, "window", {"timezone": tz_name, "until": due})
        return _WAIT

    def _send(self, conn: Connection, run: store.Run, journey: Journey, step: Step,
              now: int) -> None:
        spec = step.spec
        key = outbox_key(journey.name, run.id, step.id)
        try:
            outbox_id = enqueue(
                conn, profile_id=run.profile_id, message=str(spec["message"]),
                channel=str(spec["channel"]), fallbacks=list(spec["fallbacks"]),
                idempotency_key=key, kind=str(spec.get("kind") or journey.kind),
                journey=journey.name, step=step.id,
                data={"event": run.context.get("event", {}), **dict(spec.get("data") or {})},
                now=self.clock.now(), channels=self.channels, catalog=self.catalog,
                priority=int(spec.get("priority", journey.priority)),
                controls={"quiet_hours": str(spec.get("quiet_hours") or journey.quiet_hours),
                          "over_limit": str(spec.get("over_limit") or journey.over_limit)},
                # An untrusted trigger's properties may not aim a link (linkguard.py).
                untrusted=() if run.trusted else ("event",))
        except (KanalError, ValueError, TypeError) as exc:
            # A bad send must not stop the processor: the run goes on, and a failed
            # outbox row (and the run's log) says why, so it is seen, not just logged.
            log.warning("journey %s run %s step %s: %s", journey.name, run.id, step.id, exc)
            outbox_id = enqueue_failed(
                conn, profile_id=run.profile_id, message=str(spec["message"]),
                channel=str(spec["channel"]), idempotency_key=key,
                kind=str(spec.get("kind") or journey.kind), reason=f"not queued: {exc}",
                now=self.clock.now(), journey=journey.name, step=step.id)
            store.log(conn, run.id, now, step.id, "send_failed",
                      {"error": str(exc), "outbox_id": outbox_id})
            return
        if spec.get("expires") is not None:
            # An on-site message: shown at the person's next page view until it expires
            # (without `expires`, [onsite] queue_ttl after it was queued; onsite/pull.py).
            queue_expiry(conn, outbox_id, run.profile_id, now + int(spec["expires"]))
        store.log(conn, run.id, now, step.id, "queued", {"outbox_id": outbox_id})

    def _set_traits(self, conn: Connection, run: store.Run, step: Step,
                    now: int) -> None:
        # The traits go into the log as an identify event of Kanal's own (DESIGN: all
        # that happens is an event), which the profiles step folds, so `kanal profiles
        # rebuild` keeps them. They are also folded at once, for the run's next steps.
        traits = dict(step.spec["traits"])
        source = profile_store.first_source(conn)
        idents = identity_store.profiles_identities(conn, [run.profile_id])[run.profile_id]
        message_id = f"kanal-trait-{run.id}-{step.id}"
        row = None if source is None else trait_event(
            source, idents, traits, message_id, now, int(self.clock.now() * 1000))
        if source is None or row is None:
            # Without a source, or a userId / anonymousId to file the event on, there is
            # no event the profiles step could fold: set nothing rather than set state
            # a rebuild would lose.
            store.log(conn, run.id, now, step.id, "traits_skipped",
                      {"why": "no source" if source is None
                       else "the profile has no userId or anonymousId"})
            return
        append_events(conn, [row])
        event = store.own_event(conn, source, message_id)
        state = profile_store.load_states(conn, [run.profile_id]).get(run.profile_id)
        if event is not None and state is not None:
            apply_own_traits(state, event)
            profile_store.save_states(conn, {run.profile_id: state})
        store.log(conn, run.id, now, step.id, "traits",
                  {**traits, "event_id": None if event is None else event.id})

    def _view(self, conn: Connection, profile_id: int) -> ProfileView | None:
        state = profile_store.load_states(conn, [profile_id]).get(profile_id)
        if state is None:
            return None

        def events(name: str, since: int) -> Iterator[dict[str, Any]]:
            return timeline_store.profile_events_since(conn, profile_id, name, since)

        scores = predict_store.computed_scores(conn, [profile_id]).get(profile_id)
        return ProfileView(traits_of(state), computed(state, scores), events)

    def _date(self, conn: Connection, profile_id: int,
              spec: Mapping[str, Any]) -> int | None:
        view = self._view(conn, profile_id)
        if view is None:
            return None
        if "trait" in spec:
            value = view.traits.get(str(spec["trait"]))
        else:
            from ..profiles.segments import COMPUTED

            value = view.computed.get(COMPUTED.get(str(spec["computed"]), ""))
        return to_ms(value)


def trait_event(source: int, idents: list[tuple[str, str]], traits: Mapping[str, Any],
                message_id: str, at: int, received_at: int) -> EventRow | None:
    """The identify event a set_trait step writes to the log (None: no id to file it on).

    key_kind `kanal` marks it as Kanal's own, origin `server` as written by the back end
    (no person was seen); its messageId comes from run and step, so writing it twice
    stores it once.
    """
    user_id = next((v for k, v in idents if k == "user_id"), None)
    anonymous_id = next((v for k, v in idents if k == "anonymous_id"), None)
    if user_id is None and anonymous_id is None:
        return None
    iso = utc_iso(at / 1000)
    body: dict[str, Any] = {
        "type": "identify", "messageId": message_id, "traits": dict(traits),
        "timestamp": iso, "receivedAt": utc_iso(received_at / 1000),
        "context": {"library": {"name": "kanal"}},
    }
    if user_id:
        body["userId"] = user_id
    if anonymous_id:
        body["anonymousId"] = anonymous_id
    return event_row(source, message_id, "identify", None, user_id, anonymous_id, "server",
                     KANAL_KEY_KIND, 1, at, received_at, body, _dumps)


def _dumps(body: dict[str, Any]) -> str:
    """The JSON of a body as this writer has always stored it."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS).decode()


def _same(names: Any, props: Mapping[str, Any], run: store.Run, *,
          missing_matches: bool) -> bool:
    """Whether an event carries the same values as the run's trigger for `names`.

    A goal's `same` (`missing_matches`): an event without the property matches every
    run (an order without a cart_id ends all of the person's runs); a wait_for's: it
    must carry it.
    """
    trigger = run.context.get("event", {})
    for name in names:
        if name not in props and missing_matches:
            continue
        if props.get(name) != trigger.get(name):
            return False
    return True


def _set_timer(conn: Connection, run: store.Run, due: int, step: str,
               kind: str) -> None:
    store.set_timer(conn, run.id, due, step, kind)
    run.timer = store.Timer(run.id, due, step, kind)


class _Wait:
    """The run waits (a timer or an event will move it)."""


_WAIT = _Wait()


def to_ms(value: Any) -> int | None:
    """A date trait (epoch ms, or an ISO date / datetime; naive means UTC) in epoch ms."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _arm(run_id: int, step_id: str, arms: list[Any], holdout: float) -> str:
    """The arm of a split for a run: stable (a hash), weighted, holdout first."""
    digest = hashlib.sha256(f"{run_id}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * 100
    if point < holdout:
        return "holdout"
    rest = (point - holdout) / (100 - holdout)  # 0..1 over the arms
    total = sum(float(w) for _, w in arms)
    edge = 0.0
    for name, weight in arms:
        edge += float(weight) / total
        if rest < edge:
            return str(name)
    return str(arms[-1][0])


def _trimmed(props: dict[str, Any]) -> dict[str, Any]:
    """The trigger's properties kept with the run (large ones are left out)."""
    if len(orjson.dumps(props)) <= _CONTEXT_LIMIT:
        return props
    return {k: v for k, v in props.items() if isinstance(v, str | int | float | bool)
            and len(str(v)) < 200}
