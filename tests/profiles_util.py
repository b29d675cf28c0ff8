"""Helpers for the profiles, identity, segments and import tests: a real log on the
engine under test."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from kanal_testing import db_at

from kanal_collector.clock import FakeClock, utc_iso
from kanal_collector.profiles.step import ProfilesStep, SegmentsStep
from kanal_collector.profiles.views import lookup, profile_json
from kanal_collector.reports.attribution import AttributionSettings
from kanal_collector.reports.credits import AttributionStep
from kanal_collector.reports.engagement import EngagementStep
from kanal_collector.store import keys as keystore
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import append_events, event_row
from kanal_collector.store.schema import migrate
from kanal_collector.workers import Processor, StatsStep

T0 = 1_700_000_000_000  # ms


class Log:
    """A database with a source, events appended directly, and a processor to run."""

    def __init__(self, path: Path, clock: FakeClock | None = None, *,
                 sqlite: bool = False, attribution: AttributionSettings | None = None,
                 ) -> None:
        """A log at db_at(path), or in the SQLite file `path` whatever the engine under
        test (`sqlite`: the database a copy starts from, say); the processor keeps
        attribution credits with `attribution` (the default settings when None)."""
        self.db = Database(str(path) if sqlite else db_at(path), synchronous="OFF")
        migrate(self.db.conn())
        self.source = keystore.create_source(self.db.conn(), "default", T0)
        self.clock = clock or FakeClock(T0 / 1000 + 86_400 * 30)
        self._ids = itertools.count(1)
        self.processor = Processor(
            self.db, [StatsStep(), ProfilesStep(), SegmentsStep(self.clock),
                      AttributionStep(attribution), EngagementStep()], batch_size=7)

    @property
    def conn(self) -> Any:
        return self.db.conn()

    def add(self, type: str = "track", *, event: str | None = None,
            user_id: str | None = None, anon: str | None = None, trusted: bool = False,
            ts: int | None = None, received: int | None = None,
            traits: dict[str, Any] | None = None, properties: dict[str, Any] | None = None,
            context: dict[str, Any] | None = None, origin: str = "web",
            previous_id: str | None = None, message_id: str | None = None) -> int:
        """Append one event as ingest would have stored it; returns its message number."""
        n = next(self._ids)
        ts = T0 + n * 1000 if ts is None else ts
        received = max(ts, T0 + 10**9) if received is None else received
        body: dict[str, Any] = {"type": type, "messageId": message_id or f"m{n}",
                                "timestamp": utc_iso(ts / 1000), "context": context or {}}
        if event is not None:
            body["event"] = event
        if user_id is not None:
            body["userId"] = user_id
        if anon is not None:
            body["anonymousId"] = anon
        if traits is not None:
            body["traits"] = traits
        if properties is not None:
            body["properties"] = properties
        if previous_id is not None:
            body["previousId"] = previous_id
        row = event_row(self.source, body["messageId"], type, event, user_id, anon, origin,
                        "secret" if trusted else "public", int(trusted), ts, received,
                        body, json.dumps)
        with transaction(self.conn):
            append_events(self.conn, [row])
        return n

    def process(self) -> int:
        return self.processor.catch_up()

    def person(self, user_id: str, now_ms: int, **traits: Any) -> int:
        """A trusted identify for `user_id` (an email by default), processed; its id."""
        traits.setdefault("email", f"{user_id}@example.com")
        self.add("identify", user_id=user_id, trusted=True, traits=traits, ts=now_ms,
                 received=now_ms)
        self.process()
        pid = self.pid(user_id)
        assert pid is not None
        return pid

    def profile(self, value: str, kind: str | None = None) -> dict[str, Any] | None:
        pid = lookup(self.conn, value, kind)
        return None if pid is None else profile_json(self.conn, pid)

    def pid(self, value: str, kind: str | None = None) -> int | None:
        return lookup(self.conn, value, kind)

    def close(self) -> None:
        self.processor.close()
        self.db.close()
