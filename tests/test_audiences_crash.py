"""kill -9 in the middle of a sync, against a local stand-in of Meta's endpoint (a real
process on loopback) and a real `kanal audiences sync` process: at most the one batch in
flight is sent again (adds and removes are idempotent at the platform), and no removal
is lost."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audiences_util import Shop, meta_toml
from kanal_testing import poll

from kanal_collector.store import audiences as store

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


class StandIn:
    """The stand-in process: its port, and the requests it received."""

    def __init__(self, tmp: Path, name: str, *, stall_at: int) -> None:
        self.port_file = tmp / f"{name}.port"
        self.log = tmp / f"{name}.jsonl"
        self.process = subprocess.Popen(
            [sys.executable, str(TESTS / "audience_standin.py"), str(self.port_file),
             str(self.log), "--stall-at", str(stall_at)])
        assert poll(self.port_file.exists, 30), "the stand-in did not start"
        self.port = int(self.port_file.read_text())

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    for i in range(9):
        s.person(f"p{i}")
    yield s
    s.close()


def sync_process(shop: Shop) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kanal_collector", "audiences", "sync", "vip_ads",
         "--db", shop.db, "--config", str(shop.tmp / "kanal.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def killed_mid_sync(shop: Shop, stand_in: StandIn, requests: int) -> None:
    """Run a sync and kill -9 it once the stand-in has `requests` requests (the last
    one stalled: in flight)."""
    process = sync_process(shop)
    try:
        assert poll(lambda: len(stand_in.requests()) >= requests, 60), \
            process.stdout.read() if process.poll() is not None and process.stdout else ""
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def finish(shop: Shop) -> str:
    """A sync to the end (a new process; the dead one's lease is taken over)."""
    done = subprocess.run(
        [sys.executable, "-m", "kanal_collector", "audiences", "sync", "vip_ads",
         "--db", shop.db, "--config", str(shop.tmp / "kanal.toml")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def hashed(i: int) -> str:
    return hashlib.sha256(f"p{i}@example.com".encode()).hexdigest()


def batches(requests: list[dict[str, Any]], method: str) -> list[tuple[str, ...]]:
    return [tuple(r[0] for r in req["rows"]) for req in requests if req["method"] == method]


def test_kill_9_mid_sync_resends_one_batch_and_loses_no_removal(shop: Shop) -> None:
    # adds: 9 people in batches of 2; the 3rd request stays in flight and the sync dies
    adds = StandIn(shop.tmp, "adds", stall_at=3)
    try:
        shop.configure(meta_toml(batch_size=2, base_url=f"http://127.0.0.1:{adds.port}"))
        killed_mid_sync(shop, adds, 3)
        assert shop.states().count("added") == 4  # two batches were acknowledged
        finish(shop)
        sent = batches(adds.requests(), "POST")
    finally:
        adds.stop()
    assert len(sent) == 6
    assert sent[2] == sent[3]                          # the batch in flight, once more
    assert len(set(sent)) == 5
    assert {email for batch in sent for email in batch} == {hashed(i) for i in range(9)}
    times = Counter(email for batch in sent for email in batch)
    assert sorted(times.values()) == [1] * 7 + [2] * 2  # everyone else exactly once
    assert shop.states() == ["added"] * 9

    # removals: 5 people leave; the 2nd DELETE stays in flight and the sync dies
    for i in range(5):
        shop.identify(f"p{i}", vip=False)
    removes = StandIn(shop.tmp, "removes", stall_at=2)
    try:
        shop.configure(meta_toml(batch_size=2, base_url=f"http://127.0.0.1:{removes.port}"))
        killed_mid_sync(shop, removes, 2)
        waiting = store.counts(shop.conn, "vip_ads")["removing"]
        assert waiting == 3  # one batch of two acknowledged; the rest still waits
        finish(shop)
        gone = batches(removes.requests(), "DELETE")
    finally:
        removes.stop()
    assert gone[1] == gone[2] and len(gone) == 4
    assert {email for batch in gone for email in batch} == {hashed(i) for i in range(5)}
    assert shop.states() == ["added"] * 4
    assert store.counts(shop.conn, "vip_ads")["removing"] == 0
