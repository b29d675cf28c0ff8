"""`kanal journeys simulate`: replay the event log through one journey file, sending nothing.

The real database is only read. It is copied (sqlite3's backup) to a temporary file;
in the copy every derived table is emptied (profiles, identities, segments, journey
runs, timers, logs, conversions, the outbox, tracking) and the log too, and then the
original events are appended again one by one, in log order, on a fake clock set to
each event's `received_at`. The real parts run on the copy exactly as they run live:
the processor (profiles, segments, journeys), the timer worker (timers, schedules),
and the dispatcher with its eligibility checks and controls (quiet hours, frequency
caps, the daily budget, rate limits), handing messages to recording channels with
the configured channels' names, kinds and recipient identities (the built-in
channels when none is configured). Between two events
the clock visits every time a timer, a schedule or a queued send is due, so timers
fire and messages leave at the times they would have live. Only the given journey
is loaded, from `since` on; Kanal's own events from `since` on are dropped (the
simulated sends and traits write their own), except the person's choices
(unsubscribes). The copy is deleted afterwards.

Approximations (docs/journeys.md, "Trying a journey on past events"): opens and clicks of simulated
sends are not invented (a journey waiting for `Email Opened` times out); other
journeys are not replayed, so caps and the daily budget count only this journey's
simulated messages; webhook steps call nothing (each call is recorded as it would
have been made); `before_send` hooks don't run; split arms are drawn afresh for each
simulated run; a disabled journey file is simulated as if enabled.

Trigger events that started no run are counted by reason (history: imported, too old,
from before the journey was loaded; an exclusion; the entry rules), as live.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import requests

from ..channels.base import Channel, OutgoingMessage, SendResult
from ..channels.plugins import PULL_CHANNELS, channel_classes, configured_channels
from ..clock import FakeClock
from ..config import Config
from ..localtime import default_timezone
from ..messages.catalog import Catalog, messages_dir
from ..messages.controls import Controls
from ..messages.dispatcher import Dispatcher, Settings, link_policy
from ..messages.eligibility import BUILTIN_CHANNELS, Policy
from ..products import ProductSettings, ProductsStep, template_globals
from ..profiles.identity import default_country
from ..profiles.step import ProfilesStep, SegmentsStep
from ..store import journeys as journey_store
from ..store import simulate as store
from ..store.connection import Connection
from ..store.db import Database, transaction
from ..store.events import EventRow, append_events
from ..store.schema import migrate
from ..workers import PROCESSOR_CURSOR, Processor, StatsStep
from .definition import Journey
from .evaluator import Evaluator
from .step import JourneysStep
from .timers import TimerWorker, next_occurrence

_CHUNK = 500
Progress = Callable[[int, int], None]
REFUSAL_WORDS = {
    "imported": "imported without --trigger (history)",
    "too_old": "too old for the trigger's max_age when received (history)",
    "before_enabled": "from before the journey was first enabled (history)",
    "excluded": "the person was in an excluded journey or group",
    "already_active": "a run of the person was still going",
    "once": "entry rule once: the person had had a run",
    "once_per": "entry rule once_per: the last run was too recent",
    "no_dedupe_key": "no value for the dedupe key",
    "deduplicated": "the dedupe key's value had had its run",
}
"""What each refusal code means, in the simulation's summary."""


@dataclass(frozen=True)
class ChannelSpec:
    """What a simulated channel looks like to the dispatcher and enqueue."""

    name: str
    kind: str
    recipient_identity: str | None
    settings: Mapping[str, Any] = field(default_factory=dict)


def channel_specs(config: Config) -> list[ChannelSpec]:
    """The configured channels (`[channels.NAME]`, enabled ones), else the built-ins.

    Only the rate settings are kept; nothing is resolved or connected.
    """
    tables = configured_channels(config)
    if not tables:
        return [ChannelSpec(n, k, i) for n, (k, i) in BUILTIN_CHANNELS.items()]
    classes = channel_classes()
    out = [ChannelSpec(n, k, i) for n, (k, i) in PULL_CHANNELS.items()]
    for name, table in tables.items():
        if table.get("enabled", True) is False:
            continue
        cls = classes.get(str(table.get("type", name)))
        if cls is None:
            continue  # `kanal serve` would refuse this table; nothing could be sent on it
        rates: dict[str, Any] = {k: table[k] for k in ("rate_per_second", "rate_burst")
                                 if k in table}
        out.append(ChannelSpec(name, cls.kind, cls.recipient_identity, rates))
    return out


class RecordingChannel(Channel):
    """A channel that records what it is handed instead of delivering it."""

    name = "recording"
    kind = "console"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        """Keep the message; answer like a provider that accepted it."""
        self.sent.append(message)
        return SendResult(provider_id=f"simulated-{message.outbox_id}")


def recording_channels(specs: list[ChannelSpec]) -> dict[str, Channel]:
    """One RecordingChannel per spec, answering to its name, kind and identity."""
    out: dict[str, Channel] = {}
    for spec in specs:
        cls = type(f"Recording_{spec.name}", (RecordingChannel,), {
            "name": spec.name, "kind": spec.kind,
            "recipient_identity": spec.recipient_identity})
        out[spec.name] = cls(dict(spec.settings))
    return out


class _Response:
    status_code = 200


class WebhookRecorder:
    """Stands in for the HTTP session of webhook steps: records the call, sends nothing."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[dict[str, Any]] = []

    def __call__(self) -> WebhookRecorder:
        return self

    def __enter__(self) -> WebhookRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def post(self, url: str, json: Any = None, **kwargs: Any) -> _Response:
        """Record a would-be call (time, URL, body)."""
        self.calls.append({"at": int(self.clock.now() * 1000), "url": url, "body": json})
        return _Response()


@dataclass
class Simulation:
    """The outcome of a replay, read from the copy before it is deleted."""

    journey: str
    since: int
    until: int
    events: int
    runs: list[dict[str, Any]]
    sends: list[dict[str, Any]]
    conversions: dict[int, dict[str, Any]]
    webhooks: list[dict[str, Any]]
    people: dict[int, dict[str, Any]]
    refused: dict[str, int] = field(default_factory=dict)
    """Trigger events that started no run, by reason (`why`'s codes)."""

    def summary(self) -> dict[str, Any]:
        """Counts: entries, sends by message/channel/state, conversions and revenue."""
        by: Counter[tuple[str, str, str]] = Counter(
            (s["message"], s["channel"] or "-", s["state"]) for s in self.sends)
        revenue = sum(float(c["revenue"] or 0) for c in self.conversions.values())
        return {
            "entered": len(self.runs),
            "people": len({r["profile_id"] for r in self.runs}),
            "sends": [{"message": m, "channel": c, "state": s, "count": n}
                      for (m, c, s), n in sorted(by.items())],
            "conversions": len(self.conversions),
            "revenue": round(revenue, 2),
            "webhookCalls": len(self.webhooks),
            "notEntered": [{"code": code, "count": n, "text": REFUSAL_WORDS.get(code, code)}
                           for code, n in sorted(self.refused.items(),
                                                 key=lambda item: (-item[1], item[0]))],
        }


class Simulator:
    """Replays a database's log through one journey on a copy of it."""

    def __init__(self, config: Config, journey: Journey, *, since: int, until: int,
                 progress: Progress | None = None, workdir: Path | None = None) -> None:
        if until < since:
            raise ValueError("until must not be before since")
        self.config = config
        self.journey = journey
        self.since = since
        self.until = until
        self.progress = progress
        self.workdir = workdir
        self.specs = channel_specs(config)

    def run(self) -> Simulation:
        """Copy, replay, read the outcome, delete the copy."""
        original = store.open_readonly(self.config.db)
        tmp = Path(tempfile.mkdtemp(prefix="kanal-simulate-", dir=self.workdir))
        try:
            copy_path = tmp / "simulate.db"
            store.copy_database(original, copy_path)
            db = Database(copy_path, synchronous="OFF")
            try:
                migrate(db.conn())  # the copy, not the original, is brought up to date
                return self._replay(original, db)
            finally:
                db.close()
        finally:
            original.close()
            shutil.rmtree(tmp, ignore_errors=True)

    # -- the replay ---------------------------------------------------------------------

    def _replay(self, original: Connection, db: Database) -> Simulation:
        conn = db.conn()
        with transaction(conn):
            store.clear_derived(conn)
        first = store.first_received(original)
        self.clock = FakeClock(min(first or self.since, self.since) / 1000)
        self.channels = recording_channels(self.specs)
        self.names = sorted(self.channels)
        # Loaded once: the dispatcher would otherwise look at the files on every round.
        catalog = Catalog(Catalog.from_directory(messages_dir(self.config)).messages)
        zone = default_timezone(self.config)
        products = ProductSettings.from_config(self.config)
        self.processor = Processor(
            db, [StatsStep(), ProfilesStep(default_country=default_country(self.config)),
                 SegmentsStep(self.clock), ProductsStep(products),
                 JourneysStep(evaluator=Evaluator(clock=self.clock, default_timezone=zone))],
            batch_size=_CHUNK)
        self.webhooks = WebhookRecorder(self.clock)
        self.timers = TimerWorker(db, self.clock,
                                  evaluator=Evaluator(clock=self.clock, default_timezone=zone),
                                  session=cast(Callable[[], requests.Session], self.webhooks))
        self.dispatcher = Dispatcher(db, self.clock, self.channels, catalog,
                                     policy=Policy.from_config(self.config),
                                     settings=Settings.from_config(self.config),
                                     controls=Controls.from_config(self.config),
                                     before_send=[], owner="simulate",
                                     link_policy=link_policy(self.config),
                                     template_globals=[template_globals(products)])
        self.conn = conn
        self.loaded = False
        self._pending: list[EventRow] = []
        self._due: int | None = None
        named = self.journey.named_events()
        every_event = any(n in store.SEGMENT_EVENTS for n in named)
        total = store.count_source_events(original, self.since, self.until)
        done = 0
        try:
            for _, row in store.source_events(original, self.since, self.until):
                at = row.received_at
                if self._due is not None and self._due < at:
                    self._flush()
                    self._advance_to(at - 1)
                if not self.loaded and at >= self.since:
                    self._flush()
                    self._load(max(self.since, self._now()))
                self._set(at)
                self._pending.append(row)
                wanted = self.loaded and (every_event or (row.type == "track"
                                                          and row.event in named))
                if wanted or len(self._pending) >= _CHUNK:
                    self._flush()
                    self._tick()
                done += 1
                if self.progress is not None and (done % 1000 == 0 or done == total):
                    self.progress(done, total)
            self._flush()
            if not self.loaded:
                self._load(max(self.since, self._now()))
            self._tick()
            self._advance_to(self.until)
            self._set(self.until)
            self._tick()
            return self._outcome(original, done)
        finally:
            self.dispatcher.close()
            self.timers.close()
            self.processor.close()

    def _now(self) -> int:
        return int(self.clock.now() * 1000)

    def _set(self, ms: int) -> None:
        if ms > self._now():
            self.clock.set(ms / 1000)

    def _load(self, at: int) -> None:
        """Store the journey as the copy's only journey (version 1), from `at` on."""
        self._set(at)
        with transaction(self.conn) as conn:
            version = journey_store.add_version(conn, self.journey.name, self.journey.hash,
                                                self.journey.text, self.journey.source, at)
            journey_store.set_current(conn, self.journey.name, version, True, at)
            if "schedule" in self.journey.trigger:
                journey_store.set_schedule(conn, self.journey.name,
                                           next_occurrence(self.journey.trigger, at - 1))
        self.loaded = True
        self._due = store.next_due(self.conn, self.names)

    def _flush(self) -> None:
        """Append the events read so far to the copy's log and apply them."""
        if self._pending:
            with transaction(self.conn) as conn:
                append_events(conn, self._pending)
            self._pending = []
        self._catch_up()

    def _catch_up(self) -> int:
        done = 0
        while store.unprocessed(self.conn, PROCESSOR_CURSOR):
            done += self.processor.run_once()
        return done

    def _advance_to(self, limit: int) -> None:
        """Visit every time up to `limit` when a timer, schedule or queued send is due."""
        while self._due is not None and self._due <= limit:
            self._set(self._due)
            if not self._tick() and self._due is not None and self._due <= self._now():
                # Something due can't move now (a channel's rate limit): let a second
                # pass, as the live dispatcher's next poll would.
                step = min(self._now() + 1000, limit)
                if step <= self._now():
                    return
                self._set(step)

    def _tick(self) -> int:
        """At the clock's time: apply new events, fire due timers, dispatch due sends."""
        done = self._catch_up()
        while True:
            timers, sends = store.due_parts(self.conn, self.names)
            now = self._now()
            if timers is not None and timers <= now:
                n = self.timers.run_once()
                self._catch_up()
                if n:
                    done += n
                    continue
            if sends is not None and sends <= now:
                n = self.dispatcher.run_once()
                self._catch_up()
                if n:
                    done += n
                    continue
            break
        self._due = store.next_due(self.conn, self.names)
        return done

    # -- the outcome --------------------------------------------------------------------

    def _outcome(self, original: Connection, events: int) -> Simulation:
        conn = self.conn
        runs = store.runs(conn, self.journey.name)
        sends = store.sends(conn, self.journey.name)
        decisions = store.decisions(conn, [s["id"] for s in sends])
        for send in sends:
            send["decisions"] = decisions.get(int(send["id"]), [])
            send["at"] = _send_time(send)
        conversions = store.conversions(conn, self.journey.name)
        people = store.labels(conn, sorted({int(r["profile_id"]) for r in runs}))
        origins = store.event_origins(conn, [int(r["trigger_event"]) for r in runs
                                             if r["trigger_event"] is not None])
        for run in runs:
            found = origins.get(int(run["trigger_event"] or 0))
            run["trigger_event"] = (None if found is None
                                    else store.event_id_of(original, *found))
        for conversion in conversions.values():
            found = store.event_origins(conn, [int(conversion["eventId"] or 0)]).get(
                int(conversion["eventId"] or 0))
            conversion["eventId"] = None if found is None else store.event_id_of(original,
                                                                                 *found)
        refused = {code: n for (_, code), n in journey_store.refusals_since(
            conn, 0, self.journey.name).items()}
        return Simulation(self.journey.name, self.since, self.until, events, runs, sends,
                          conversions, list(self.webhooks.calls), people, refused)


def _send_time(send: Mapping[str, Any]) -> int:
    """When a simulated send went (or was decided): sent_at, else its last change."""
    if send["state"] == "sent" and send["sent_at"] is not None:
        return int(send["sent_at"])
    if send["state"] == "queued":
        return int(send["next_attempt_at"])
    return int(send["updated_at"])


def label(ids: Mapping[str, Any], profile_id: int) -> str:
    """How a person is named in the report: userId, email, anonymousId or profile:ID."""
    for kind in ("user_id", "email", "anonymous_id"):
        if ids.get(kind):
            return str(ids[kind])
    return f"profile:{profile_id}"


def timelines(sim: Simulation, limit: int) -> list[dict[str, Any]]:
    """The first `limit` people (by first entry): their runs, sends and conversions."""
    by_person: dict[int, list[dict[str, Any]]] = {}
    for run in sim.runs:
        by_person.setdefault(int(run["profile_id"]), []).append(run)
    sends_by_run: dict[int, list[dict[str, Any]]] = {}
    for send in sim.sends:
        if send["run_id"] is not None:
            sends_by_run.setdefault(int(send["run_id"]), []).append(send)
    out = []
    for pid in list(by_person)[:limit]:
        person_runs = []
        for run in by_person[pid]:
            conversion = sim.conversions.get(int(run["id"]))
            person_runs.append({
                "enteredAt": int(run["entered_at"]), "triggerEvent": run["trigger_event"],
                "state": run["state"], "endedAt": run["ended_at"],
                "endReason": run["end_reason"],
                "sends": [{"message": s["message"], "channel": s["channel"],
                           "step": s["step"], "state": s["state"], "reason": s["reason"],
                           "at": s["at"], "decisions": s["decisions"]}
                          for s in sends_by_run.get(int(run["id"]), [])],
                "conversion": None if conversion is None else {
                    "event": conversion["event"], "revenue": conversion["revenue"],
                    "at": conversion["at"], "eventId": conversion["eventId"]},
            })
        out.append({"person": label(sim.people.get(pid, {}), pid), "runs": person_runs})
    return out
