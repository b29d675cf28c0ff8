"""Helpers for the journeys tests: a real log, the processor with the journeys step,
the timer worker, all on one fake clock."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from profiles_util import Log

from kanal_collector.clock import FakeClock
from kanal_collector.journeys import Evaluator, JourneysStep, TimerWorker
from kanal_collector.profiles.step import ProfilesStep, SegmentsStep
from kanal_collector.reports.engagement import EngagementStep
from kanal_collector.reports.kept_funnels import FunnelStep
from kanal_collector.store import journeys as store
from kanal_collector.workers import Processor, StatsStep

START = 1_700_000_000 + 86_400 * 60  # seconds


class Journeys:
    """A log, a journeys directory, the processor (with journeys) and a timer worker."""

    def __init__(self, tmp: Path, *, webhook_session: Any = None) -> None:
        self.clock = FakeClock(START)
        self.log = Log(tmp / "kanal.db", self.clock)
        self.dir = tmp / "journeys"
        self.dir.mkdir(exist_ok=True)
        self.evaluator = Evaluator(clock=self.clock)
        self.log.processor = Processor(
            self.log.db, [StatsStep(), ProfilesStep(), SegmentsStep(self.clock),
                          EngagementStep(), FunnelStep(settle=0),
                          JourneysStep(evaluator=self.evaluator)],
            batch_size=7)
        self.timers = TimerWorker(self.log.db, self.clock, journeys_dir=self.dir,
                                  evaluator=Evaluator(clock=self.clock),
                                  session=webhook_session)

    @property
    def conn(self) -> Any:
        return self.log.conn

    def write(self, name: str, text: str) -> Path:
        path = self.dir / f"{name}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def sync(self) -> Any:
        return self.timers.reload(force=True)

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def person(self, user_id: str, **traits: Any) -> int:
        return self.log.person(user_id, self.now_ms(), **traits)

    def track(self, user_id: str, event: str, **properties: Any) -> None:
        self.log.add("track", event=event, user_id=user_id, trusted=True,
                     properties=properties, ts=self.now_ms(), received=self.now_ms())
        self.log.process()

    def advance(self, seconds: float) -> int:
        """Move the clock and let the timer worker catch up; returns timers fired."""
        self.clock.advance(seconds)
        self.log.process()
        fired = 0
        while n := self.timers.run_once():
            fired += n
        return fired

    def outbox(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT idempotency_key, profile_id, message, channel, journey, step, state, "
            "data FROM outbox ORDER BY id").fetchall()
        keys = ("key", "profile_id", "message", "channel", "journey", "step", "state", "data")
        return [{**dict(zip(keys, r, strict=True)), "data": json.loads(r[7])} for r in rows]

    def runs(self, journey: str | None = None) -> list[dict[str, Any]]:
        return list(reversed(store.runs(self.conn, journey=journey)))

    def close(self) -> None:
        self.timers.close()
        self.log.close()
