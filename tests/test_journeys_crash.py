"""kill -9 in the middle of running journeys: no duplicate and no lost step."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from kanal_testing import query, start_collector

JOURNEY = """\
name: drip
trigger: {event: Product Added}
entry: {rule: every_time, dedupe: cart_id}
steps:
  - send: m1
    channel: email
  - wait: 1s
  - send: m2
    channel: email
  - wait: 1s
  - send: m3
    channel: email
"""
PEOPLE = 300
ENV = {"KANAL_LEASE_SECONDS": "1", "KANAL_POLL_INTERVAL": "0.05"}


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    return query(db, sql)


def _wait(check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.mark.slow
def test_kill_9_mid_journey_neither_duplicates_nor_loses_a_step(tmp_path: Path) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "drip.yaml").write_text(JOURNEY)
    db = tmp_path / "kanal.db"
    collector = start_collector(db, env=ENV)
    batch = [{"type": "track", "event": "Product Added", "userId": f"u{i}",
              "messageId": f"m{i}", "properties": {"cart_id": f"c{i}"}}
             for i in range(PEOPLE)]
    r = requests.post(f"{collector.url}/v1/batch", json={"batch": batch},
                      auth=(collector.secret_key, ""), timeout=30)
    assert r.status_code == 200
    for pause in (0.7, 0.9):
        # Some runs have entered, some have sent m1, some are waiting: kill -9.
        time.sleep(pause)
        collector.kill()
        collector = start_collector(db, keys=collector.keys, env=ENV)
    try:
        assert _wait(lambda: _rows(db, "SELECT count(*) FROM journey_runs "
                                       "WHERE state = 'completed'") == [(PEOPLE,)]), (
            _rows(db, "SELECT state, step, count(*) FROM journey_runs GROUP BY 1, 2"),
            _rows(db, "SELECT * FROM cursors"), "".join(collector.output)[-2000:])
    finally:
        collector.stop()
    assert _rows(db, "SELECT count(*) FROM journey_runs") == [(PEOPLE,)]
    assert _rows(db, "SELECT count(*) FROM journey_timers") == [(0,)]
    steps: dict[int, list[str]] = {}
    for run_id, step in _rows(db, "SELECT r.id, o.step FROM journey_runs r JOIN outbox o "
                                  "ON o.idempotency_key LIKE 'journey:drip:' || r.id || ':%'"):
        steps.setdefault(run_id, []).append(step)
    assert len(steps) == PEOPLE
    assert {tuple(sorted(s)) for s in steps.values()} == {("1", "3", "5")}
    # Each send step ran once (its log line is written in the same transaction).
    assert _rows(db, "SELECT count(*) FROM journey_log WHERE what = 'queued'") == [
        (3 * PEOPLE,)]
    assert _rows(db, "SELECT count(*) FROM outbox") == [(3 * PEOPLE,)]
