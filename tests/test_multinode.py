"""Three `kanal serve` nodes on one PostgreSQL, load on all, kill -9 of one mid-ingest and
mid-dispatch: every acknowledged event is stored and processed once, no email goes out
twice, and the survivors take the work over (docs/nodes.md).

A real SMTP server (aiosmtpd) takes the email, slowly (a pause per message), so every
node's dispatcher is in the middle of a send most of the time, and the node killed is
the one holding the workers' lease, so the processor moves too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kanal_testing import POSTGRES, Collector, SmtpCatcher, query, smtp_controller, start_collector

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not POSTGRES, reason="several nodes share PostgreSQL")]

JOURNEY = """\
name: welcome
trigger: {event: Signed Up}
steps:
  - send: welcome
    channel: email
"""
MESSAGE = """\
kind: transactional
email:
  subject: "Welcome"
  text: "Hi, welcome to the shop."
"""
LEASE = 2
ENV = {"KANAL_LEASE_SECONDS": str(LEASE), "KANAL_POLL_INTERVAL": "0.1"}


class SlowCatcher(SmtpCatcher):
    """Takes each message after a pause; while `open` is cleared, holds every message
    at DATA (its sender is then mid-send: the message is with the server, the server's
    250 not yet with the sender)."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.open.set()
        self.held = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.01)
        if not self.open.is_set():
            self.held += 1
            while not self.open.is_set():
                await asyncio.sleep(0.01)
            self.held -= 1
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def smtp() -> Iterator[SlowCatcher]:
    handler = SlowCatcher()
    controller = smtp_controller(handler)
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        controller.stop()


def _wait(check: Callable[[], Any], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


class Load:
    """A thread that signs five people up through one node every `pause` seconds until
    stopped (a steady load the nodes keep up with); what was acknowledged."""

    def __init__(self, node: Collector, key: str, prefix: str, threads: int = 1,
                 pause: float = 0.2) -> None:
        self.pause = pause
        self.node, self.key, self.prefix = node, key, prefix
        self.acked: list[str] = []  # messageIds of 2xx answers
        self.people: list[str] = []
        self._stop = threading.Event()
        self._n = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _batch(self) -> tuple[list[str], list[dict[str, Any]]]:
        with self._lock:
            first, self._n = self._n, self._n + 5
        people = [f"{self.prefix}{i}" for i in range(first, first + 5)]
        batch: list[dict[str, Any]] = []
        for user in people:
            batch.append({"type": "identify", "userId": user, "messageId": f"i-{user}",
                          "traits": {"email": f"{user}@example.com"}})
            batch.append({"type": "track", "event": "Signed Up", "userId": user,
                          "messageId": f"s-{user}"})
        return people, batch

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            people, batch = self._batch()
            try:
                r = session.post(f"{self.node.url}/v1/batch", json={"batch": batch},
                                 auth=(self.key, ""), timeout=10)
            except requests.RequestException:
                return  # the node is gone
            if r.status_code == 200:
                with self._lock:
                    self.acked += [e["messageId"] for e in batch]
                    self.people += people
            self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _holder(db: Path) -> str:
    rows = query(db, "SELECT owner FROM leases WHERE name = 'workers'")
    return str(rows[0][0]) if rows else ""


def test_three_nodes_and_a_kill_9_lose_and_double_nothing(tmp_path: Path,
                                                         smtp: SlowCatcher) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.yaml").write_text(JOURNEY)
    (tmp_path / "messages").mkdir()
    (tmp_path / "messages" / "welcome.yaml").write_text(MESSAGE)
    (tmp_path / "kanal.toml").write_text(
        f'[channels.email]\nhost = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n'  # type: ignore[attr-defined]
        'from = "Shop <shop@example.com>"\n')
    db = tmp_path / "kanal.db"
    first = start_collector(db, env=ENV)
    nodes = [first] + [start_collector(db, env=ENV, keys=first.keys) for _ in range(2)]
    loads: list[Load] = []
    try:
        assert _wait(lambda: _holder(db) != "", 30)
        victim = next(n for n in nodes if f":{n.process.pid}:" in _holder(db))
        survivors = [n for n in nodes if n is not victim]
        loads = [Load(n, first.secret_key, f"n{i}-") for i, n in enumerate(nodes)]
        # Load on all three; the lease holder is ingesting, processing and mid-send.
        assert _wait(lambda: len(smtp.received) >= 60, 90)
        smtp.open.clear()  # every node's dispatcher comes to be mid-send …
        assert _wait(lambda: smtp.held == len(nodes), 60)
        victim.kill()  # … and the lease holder dies there
        killed_at = time.monotonic()
        smtp.open.set()
        assert _wait(lambda: any(f":{n.process.pid}:" in _holder(db) for n in survivors), 60)
        took_over = time.monotonic() - killed_at
        # The survivors keep ingesting for a while, then the load stops.
        acked_then = sum(len(x.people) for x in loads)
        assert _wait(lambda: sum(len(x.people) for x in loads) >= acked_then + 100, 60)
        for load in loads:
            load.stop()

        def settled() -> bool:
            top = query(db, "SELECT max(id) FROM events")[0][0]
            cursor = query(db, "SELECT position FROM cursors WHERE name = 'processor'")
            waiting = query(db, "SELECT count(*) FROM outbox WHERE state IN "
                                "('queued', 'sending')")[0][0]
            return cursor == [(top,)] and waiting == 0

        assert _wait(settled, 120), query(db, "SELECT state, count(*) FROM outbox GROUP BY 1")
    finally:
        for load in loads:
            load.stop()
        for node in nodes:
            node.stop()

    # Every acknowledged event is stored, once.
    acked = [m for load in loads for m in load.acked]
    stored = Counter(r[0] for r in query(db, "SELECT message_id FROM events"))
    assert not [m for m in acked if stored[m] != 1]
    assert max(stored.values()) == 1
    # … and processed once: the daily counts add up to the log, no batch applied twice.
    events = query(db, "SELECT count(*) FROM events")[0][0]
    assert query(db, "SELECT sum(count) FROM event_stats") == [(events,)]
    # One welcome per person who signed up (acknowledged or stored before the kill).
    signed_up = {r[0] for r in query(db, "SELECT user_id FROM events WHERE event = 'Signed Up'")}
    people = {p for load in loads for p in load.people}
    assert people <= signed_up
    rows = query(db, "SELECT o.id, o.state, i.value FROM outbox o JOIN identities i "
                     "ON i.profile_id = o.profile_id AND i.kind = 'user_id'")
    assert Counter(r[2] for r in rows) == Counter(signed_up)
    # No email went out twice; every sent row's email arrived once; in doubt only the one
    # the killed node was sending (never sent again: SMTP takes no idempotency key).
    arrived = Counter(str(msg["Message-ID"]) for _, msg in smtp.received)
    assert max(arrived.values()) == 1
    recipients = Counter(rcpt for rcpts, _ in smtp.received for rcpt in rcpts)
    states = Counter(r[1] for r in rows)
    assert states == {"sent": len(rows) - 1, "in_doubt": 1}, states
    assert {a for a, n in recipients.items() if n != 1} == set()
    sent = {f"{r[2]}@example.com" for r in rows if r[1] == "sent"}
    doubt = {f"{r[2]}@example.com" for r in rows if r[1] == "in_doubt"}
    assert sent <= set(recipients) <= sent | doubt  # in doubt: it reached the server or not
    print(f"\n{len(people)} people, {events} events, {len(smtp.received)} emails; "
          f"the workers' lease moved {took_over:.1f} s after the kill (lease {LEASE} s)")
