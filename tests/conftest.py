"""Shared fixtures: real collector processes on loopback, real databases of the engine
under test (kanal_testing.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journeys_util import Journeys
from kanal_testing import (
    POSTGRES,
    App,
    Collector,
    SmtpCatcher,
    drop_made,
    made,
    make_app,
    smtp_controller,
    start_collector,
)
from messages_util import World
from profiles_util import Log

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """On PostgreSQL, drop the databases a test made once it is done (those of wider
    fixtures, made before it started, stay)."""
    before = made() if POSTGRES else set()
    yield
    if POSTGRES:
        drop_made(keep=before)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    """A log on the engine under test: a source, events appended directly, the processor."""
    lg = Log(tmp_path / "kanal.db")
    try:
        yield lg
    finally:
        lg.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A fresh collector process with a new database; keys from its first start."""
    c = start_collector(tmp_path / "kanal.db")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def kanal_app(tmp_path: Path) -> Iterator[App]:
    """A collector app in this process (no workers running) on a fresh database."""
    from kanal_collector.app import close_app

    env = make_app(tmp_path / "kanal.db")
    try:
        yield env
    finally:
        close_app(env.app)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A database with people, message files and recording channels (messages tests)."""
    w = World(tmp_path / "kanal.db")
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def journeys_env(tmp_path: Path) -> Iterator[Journeys]:
    """A log, a journeys directory, the processor with journeys and a timer worker, on a
    fake clock (journeys tests)."""
    j = Journeys(tmp_path)
    try:
        yield j
    finally:
        j.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (no downloaded browser builds).

    One per test process: Playwright's sync API can't run twice at once in a process.
    """
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def smtp() -> Iterator[tuple[Any, SmtpCatcher]]:
    """A real SMTP server (aiosmtpd) on an ephemeral loopback port that keeps every mail."""
    handler = SmtpCatcher()
    controller = smtp_controller(handler)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()
