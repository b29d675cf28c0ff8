"""`kanal events prune --before DATE` on both engines, and PostgreSQL's monthly partitions.

The log spans January to March 2024 and is pruned from the middle of February: January
goes whole (on PostgreSQL its partition is dropped), February's first half row by row,
March stays; what the processor derived stays as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import POSTGRES, db_at
from profiles_util import Log

from kanal_collector.cli import cli
from kanal_collector.clock import FakeClock
from kanal_collector.profiles.rebuild import LogPruned, rebuild
from kanal_collector.store import partitions
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow, append_events
from kanal_collector.store.retention import PruneRefused, prune, pruned_before
from kanal_collector.store.schema import migrate

postgres_only = pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's partitions")


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


NOW = ms("2024-04-10")
CUT = ms("2024-02-15")
DAYS = ["2024-01-05", "2024-01-20", "2024-01-28", "2024-02-03", "2024-02-14",
        "2024-02-16", "2024-02-27", "2024-03-02", "2024-03-30"]


def _migrated_in_2023(path: Path) -> None:
    """On PostgreSQL, a database partitioned in December 2023: the months of the test
    get partitions of their own (a database's months start when it is partitioned)."""
    if not POSTGRES:
        return
    url = db_at(path, migrated=False)
    conn = Database(url).connect()
    real = time.time
    try:
        time.time = lambda: ms("2023-12-20") / 1000  # type: ignore[assignment]
        migrate(conn)
    finally:
        time.time = real  # type: ignore[assignment]
        conn.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Log]:
    _migrated_in_2023(tmp_path / "kanal.db")
    lg = Log(tmp_path / "kanal.db", FakeClock(NOW / 1000))
    for i, day in enumerate(DAYS):
        at = ms(day)
        user = f"u{i % 3}"
        lg.add("identify", user_id=user, trusted=True, ts=at, received=at,
               traits={"email": f"{user}@example.com"}, message_id=f"id-{i}")
        lg.add("track", event="Order Completed", user_id=user, trusted=True, ts=at + 1,
               received=at + 1, properties={"order_id": f"o{i}", "revenue": 10 + i},
               message_id=f"order-{i}")
    lg.process()
    try:
        yield lg
    finally:
        lg.close()


def _state(conn: Any) -> dict[str, Any]:
    """What the processor derived: it must not change when the log is pruned."""
    return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()))
            for t in ("profiles", "identities", "event_stats", "merges", "order_copies")}


def _received(conn: Any) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT received_at FROM events ORDER BY id")]


def test_prune_deletes_the_log_before_the_date_and_keeps_what_it_made(shop: Log) -> None:
    conn = shop.conn
    before = _state(conn)
    done = prune(conn, CUT, now_ms=NOW)
    assert done.events == 10  # five days before the cut, two events each
    assert _received(conn) == sorted(r for d in DAYS if ms(d) >= CUT for r in (ms(d), ms(d) + 1))
    assert _state(conn) == before
    dangling = conn.execute("SELECT count(*) FROM profile_events pe WHERE NOT EXISTS "
                            "(SELECT 1 FROM events e WHERE e.id = pe.event_id)").fetchone()[0]
    assert dangling == 0 and done.timeline_rows == 10
    assert pruned_before(conn) == CUT
    assert prune(conn, ms("2024-01-01"), now_ms=NOW).events == 0  # nothing older is left
    assert pruned_before(conn) == CUT  # the horizon never moves back
    if POSTGRES:
        # December (made when the database was partitioned, and empty) goes too.
        assert done.partitions == ["events_p202312", "events_p202401"]
        months = [p.name for p in partitions.partitions(conn)]
        assert "events_p202401" not in months and "events_p202402" in months


def test_a_pruned_log_is_not_rebuilt(shop: Log) -> None:
    prune(shop.conn, CUT, now_ms=NOW)
    with pytest.raises(LogPruned, match="2024-02-15T00:00:00Z were pruned"):
        rebuild(shop.conn, shop.clock)
    assert shop.pid("u1") is not None  # profiles are kept as they are


def test_only_applied_events_can_go(shop: Log) -> None:
    shop.add("track", event="Late", user_id="u1", ts=ms("2024-01-10"), received=CUT - 1)
    count = shop.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    with pytest.raises(PruneRefused, match="not applied 1 of the events"):
        prune(shop.conn, CUT, now_ms=NOW)
    with pytest.raises(PruneRefused, match="in the future"):
        prune(shop.conn, NOW + 1, now_ms=NOW)
    assert shop.conn.execute("SELECT count(*) FROM events").fetchone()[0] == count
    assert pruned_before(shop.conn) is None
    shop.process()
    # On PostgreSQL an event belongs to the month it was logged in: this one came after
    # March's and is in March's partition, which a prune before February 15 leaves.
    assert prune(shop.conn, CUT, now_ms=NOW).events == (10 if POSTGRES else 11)


def test_message_ids_are_kept_while_their_events_are(shop: Log) -> None:
    def again(message_id: str, received: int) -> int:
        row = EventRow(shop.source, message_id, "track", "Again", "u1", None, "web", "secret",
                       1, received, received, json.dumps({"messageId": message_id}))
        with transaction(shop.conn) as conn:
            return append_events(conn, [row])

    assert again("order-8", NOW) == 0  # March's, in another month than it is sent again
    assert again("order-0", NOW) == 0  # January's
    prune(shop.conn, CUT, now_ms=NOW)
    assert again("order-8", NOW) == 0
    assert again("order-0", NOW) == 1  # pruned with its event: a resend is a new event


@postgres_only
def test_ids_carry_their_month_and_a_lookup_by_id_stays_in_one_partition(shop: Log) -> None:
    conn = shop.conn
    ids = [int(r[0]) for r in conn.execute("SELECT id FROM events ORDER BY id")]
    months = [partitions.month_of(ms(d)) for d in DAYS for _ in (0, 1)]
    assert [i // partitions.MONTH_IDS for i in ids] == months
    assert ids == sorted(ids)
    plan = "\n".join(str(r[0]) for r in conn.execute(
        f"EXPLAIN SELECT body FROM events WHERE id = {ids[3]}"))
    assert "events_p202401" in plan and "events_p202402" not in plan


@postgres_only
def test_an_interrupted_prune_is_finished_by_the_next(shop: Log) -> None:
    conn = shop.conn
    # As if a prune was stopped after detaching January and before dropping it.
    conn.execute("ALTER TABLE events DETACH PARTITION events_p202401")
    keys = conn.execute("SELECT count(*) FROM event_keys").fetchone()[0]
    done = prune(conn, ms("2024-02-01"), now_ms=NOW)
    assert done.partitions == ["events_p202401", "events_p202312"] and done.events == 6
    assert conn.execute("SELECT count(*) FROM event_keys").fetchone()[0] == keys - 6
    assert conn.execute("SELECT to_regclass('events_p202401')").fetchone()[0] is None


@postgres_only
def test_a_month_is_made_when_its_first_event_comes(shop: Log) -> None:
    conn = shop.conn
    assert "events_p202405" not in [p.name for p in partitions.partitions(conn)]
    shop.add("track", event="May", user_id="u1", ts=ms("2024-05-02"),
             received=ms("2024-05-02"))
    got = conn.execute("SELECT id FROM events WHERE event = 'May'").fetchone()[0]
    assert got == 202405 * partitions.MONTH_IDS
    assert "events_p202405" in [p.name for p in partitions.partitions(conn)]
    made = partitions.ensure_ahead(conn, ms("2024-05-02"))
    assert made == ["events_p202406", "events_p202407"]


def test_prune_command(shop: Log) -> None:
    runner = CliRunner()
    db = shop.db.target
    bad = runner.invoke(cli, ["events", "prune", "--before", "15.2.2024", "--yes", "--db", db])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "Error: --before: a day (2025-01-31, from midnight UTC) or a moment with its UTC "
        "offset (2025-01-31T12:00:00+01:00), not '15.2.2024'"]
    future = runner.invoke(cli, ["events", "prune", "--before", "2999-01-01", "--yes",
                                 "--db", db])
    assert future.exit_code == 1 and future.output.startswith("Error: nothing pruned: ")
    asked = runner.invoke(cli, ["events", "prune", "--before", "2024-02-15", "--db", db],
                          input="n\n")
    assert asked.exit_code == 1 and "Aborted" in asked.output
    done = runner.invoke(cli, ["events", "prune", "--before", "2024-02-15T01:00:00+01:00",
                               "--yes", "--db", db])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("Pruned 10 events received before 2024-02-15 00:00:00Z")
    assert "10 timeline rows" in done.output
