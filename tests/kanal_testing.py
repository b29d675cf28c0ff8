"""Test helpers: real collector processes on loopback, in-process apps on real SQLite files.

A module of its own (not conftest.py): test folders with their own conftest.py would
otherwise shadow `from conftest import …`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_KEY_LINE = re.compile(r"^\s*(public|secret|admin) key:\s*(\S+)\s*$")
_LISTEN_LINE = re.compile(r"listening on (http://\S+)")


@dataclass
class Collector:
    """A `kanal serve` process started by a test, and what it printed at start."""

    url: str
    db_path: Path
    process: subprocess.Popen[str]
    keys: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    drain: Any = None

    @property
    def public_key(self) -> str:
        return self.keys["public"]

    @property
    def secret_key(self) -> str:
        return self.keys["secret"]

    @property
    def admin_key(self) -> str:
        return self.keys["admin"]

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, oldest first, with its JSON body parsed."""
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM events ORDER BY id").fetchall()
        finally:
            conn.close()
        out = []
        for row in rows:
            item = dict(row)
            item["body"] = json.loads(item["body"])
            out.append(item)
        return out

    def wait_for_events(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Poll the database until at least `count` events are stored."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events()
            if len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def stop(self) -> None:
        """Ask the process to stop (SIGTERM) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_pipe()

    def kill(self) -> None:
        """kill -9: no clean shutdown at all."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.drain is not None:
            self.drain.join(5)
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.process.stdout.close()


def start_collector(
    db_path: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    keys: dict[str, str] | None = None,
) -> Collector:
    """Start `kanal serve` on a free loopback port and wait until it listens.

    `keys` carries the keys of an earlier start over (a restart prints none).
    """
    cmd = [
        sys.executable, "-m", "kanal_collector", "serve",
        "--host", "127.0.0.1", "--port", "0", "--db", str(db_path), *args,
    ]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=full_env, cwd=cwd or db_path.parent,
    )
    collector = Collector(url="", db_path=db_path, process=proc, keys=dict(keys or {}))
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        collector.output.append(line)
        if m := _KEY_LINE.match(line):
            collector.keys[m.group(1)] = m.group(2)
        if m := _LISTEN_LINE.search(line):
            collector.url = m.group(1)
            break
        if time.monotonic() > deadline:
            break
    if not collector.url:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise RuntimeError("collector did not start:\n" + "".join(collector.output))
    # Keep draining output so the child never blocks on a full pipe.
    import threading

    def _drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            collector.output.append(line)

    collector.drain = threading.Thread(target=_drain, daemon=True)
    collector.drain.start()
    return collector


@dataclass
class App:
    """An in-process collector (Flask test client) on a fresh database."""

    app: Any
    client: Any
    db_path: Path
    keys: dict[str, str]
    clock: Any

    def process(self) -> int:
        """Let the processor apply everything ingested so far; how many events."""
        from kanal_collector.app import build_processor

        processor = build_processor(self.app.extensions["kanal"].db)
        try:
            return processor.catch_up()
        finally:
            processor.close()

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query against the database file."""
        conn = sqlite3.connect(self.db_path)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def events(self) -> list[dict[str, Any]]:
        """Every stored event, body parsed."""
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
        finally:
            conn.close()
        for row in rows:
            row["body"] = json.loads(row["body"])
        return rows


def make_app(db_path: Path, **settings: Any) -> App:
    """create_app on `db_path` with a fake clock and the first-start keys."""
    from kanal_collector.app import create_app
    from kanal_collector.clock import FakeClock
    from kanal_collector.config import Config
    from kanal_collector.store.keys import bootstrap

    clock = FakeClock(1_790_000_000.0)
    config = Config(db=db_path, **settings)
    app = create_app(config, clock=clock)
    runtime = app.extensions["kanal"]
    keys = bootstrap(runtime.db.conn(), int(clock.now() * 1000)) or {}
    return App(app=app, client=app.test_client(), db_path=db_path, keys=keys, clock=clock)


class SmtpCatcher:
    """An aiosmtpd handler that keeps every mail: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        from email import message_from_bytes, policy

        self.received.append((list(envelope.rcpt_tos), message_from_bytes(
            envelope.original_content or b"", policy=policy.default)))
        return "250 OK"


def smtp_controller(handler: Any) -> Any:
    """aiosmtpd's Controller for `handler` on an ephemeral loopback port (`.port` once
    started)."""
    from aiosmtpd.controller import Controller

    class _Controller(Controller):
        def _trigger_server(self) -> None:
            assert self.server is not None
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    return _Controller(handler, hostname="127.0.0.1", port=0)


def poll(check: Any, timeout: float = 90.0, step: float = 0.2) -> Any:
    """Call `check` until it returns something true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(step)
    return check()


def _schema_objects(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    return set(conn.execute("SELECT type, name FROM sqlite_master "
                            "WHERE type IN ('table', 'index') AND sql IS NOT NULL").fetchall())


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def downgrade(conn: sqlite3.Connection, version: int) -> None:
    """Put a database's schema back to `version`: drop the tables, indexes and columns
    later migrations made (found by building a fresh schema up to `version`) and set
    user_version."""
    from sqlite_utils import Database as Schema

    from kanal_collector.store.schema import MIGRATIONS

    fresh = sqlite3.connect(":memory:")
    try:
        for step in MIGRATIONS[:version]:
            step(Schema(fresh))
        keep = _schema_objects(fresh)
        columns = {name: _columns(fresh, name) for kind, name in keep if kind == "table"}
    finally:
        fresh.close()
    # Indexes first: an index of a dropped table goes with it.
    for kind, name in sorted(_schema_objects(conn) - keep, key=lambda o: o[0] != "index"):
        if (kind, name) in _schema_objects(conn):
            conn.execute(f"DROP {kind.upper()} {name}")
    # Columns later migrations added to older tables (ALTER TABLE … ADD COLUMN).
    for table, kept in sorted(columns.items()):
        for column in _columns(conn, table):
            if column not in kept:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
