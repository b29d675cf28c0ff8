"""Shared fixtures: real collector processes on loopback, real SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kanal_testing import App, Collector, make_app, start_collector
from messages_util import World


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
