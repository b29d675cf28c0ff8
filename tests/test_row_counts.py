"""The number of profiles kept by triggers (store/row_counts.py) is what counting them
says, whatever added or deleted them: new people, merges, `kanal forget`, `profiles
rebuild`, a profile added and deleted in one transaction, a migrated database's count."""

from __future__ import annotations

from pathlib import Path

import pytest
from kanal_testing import db_at, downgrade
from profiles_util import T0, Log

from kanal_collector.clock import FakeClock
from kanal_collector.profiles.privacy import forget
from kanal_collector.profiles.rebuild import rebuild
from kanal_collector.store import row_counts
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.profiles import count_profiles, create_profile
from kanal_collector.store.schema import MIGRATIONS, migrate


def counted(log: Log) -> int:
    return int(log.conn.execute("SELECT count(*) FROM profiles").fetchone()[0])


def test_the_kept_count_follows_every_change(tmp_path: Path) -> None:
    log = Log(tmp_path / "k.db")
    try:
        assert count_profiles(log.conn) == 0
        for i in range(30):  # anonymous visitors, a third of whom log in later
            log.add("page", anon=f"a{i}")
        for i in range(20):
            log.add("identify", user_id=f"u{i}", traits={"email": f"p{i}@example.com"},
                    trusted=True)
        log.process()
        assert count_profiles(log.conn) == counted(log) == 50
        for i in range(10):  # a visitor logs in: two profiles become one
            log.add("identify", user_id=f"u{i}", anon=f"a{i}", trusted=True)
        log.process()
        assert count_profiles(log.conn) == counted(log) == 40
        for i in range(3):
            forget(log.conn, f"u{i}", T0 + 10**9, kind="user_id")
        assert count_profiles(log.conn) == counted(log) == 37
        rebuild(log.conn, FakeClock(T0 / 1000 + 86_400 * 30))
        assert count_profiles(log.conn) == counted(log) == 37
        with pytest.raises(RuntimeError), transaction(log.conn) as conn:
            create_profile(conn, T0, {})
            assert count_profiles(conn) == 38
            raise RuntimeError("rolled back")
        assert count_profiles(log.conn) == counted(log) == 37
    finally:
        log.close()


def test_migration_29_counts_the_profiles_there_are(tmp_path: Path) -> None:
    log = Log(tmp_path / "k.db")
    try:
        for i in range(12):
            log.add("identify", user_id=f"u{i}", trusted=True)
        log.process()
        conn = log.conn
        with transaction(conn):
            downgrade(conn, 28)
        assert "row_counts" not in conn.dialect.tables(conn)
        with transaction(conn):  # no trigger counts this one
            create_profile(conn, T0, {})
        assert migrate(conn) == len(MIGRATIONS)
        assert count_profiles(conn) == 13
        with transaction(conn):
            create_profile(conn, T0, {})
        assert count_profiles(conn) == 14
    finally:
        log.close()


def test_only_counted_tables_are_asked_for(tmp_path: Path) -> None:
    db = Database(db_at(tmp_path / "k.db"))
    try:
        with pytest.raises(ValueError, match="not counted"):
            row_counts.rows(db.conn(), "events")
    finally:
        db.close()
