"""Profiles as a processor step: traits, computed values, rebuild, forget, atomicity."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from kanal_testing import dump_text, full_scans
from profiles_util import T0, Log

from kanal_collector.profiles.privacy import forget, is_suppressed
from kanal_collector.profiles.rebuild import RebuildBusy, rebuild
from kanal_collector.profiles.step import ProfilesStep
from kanal_collector.profiles.views import export_json, snapshot
from kanal_collector.store import leases
from kanal_collector.store import privacy as privacy_store
from kanal_collector.store.connection import Connection
from kanal_collector.store.events import StoredEvent
from kanal_collector.workers import LEASE_NAME, Processor

DAY = 86_400_000


def test_traits_last_write_wins_by_event_time(log: Log) -> None:
    log.add("identify", user_id="u1", ts=T0 + 3000, traits={"plan": "pro", "name": "Ann"})
    log.add("identify", user_id="u1", ts=T0 + 1000, traits={"plan": "free", "city": "Lund"})
    log.add("track", event="X", user_id="u1", ts=T0 + 2000, context={"traits": {"name": "A"}})
    log.process()
    p = log.profile("u1")
    assert p is not None
    assert p["traits"] == {"city": "Lund", "name": "Ann", "plan": "pro"}
    assert p["traitTimes"]["plan"] == T0 + 3000


def test_future_timestamps_are_capped_at_receipt(log: Log) -> None:
    log.add("identify", user_id="u1", ts=T0 + 10 * DAY, received=T0, traits={"plan": "x"})
    log.add("identify", user_id="u1", ts=T0 + DAY, received=T0 + DAY, traits={"plan": "y"})
    log.process()
    assert log.profile("u1")["traits"]["plan"] == "y"  # type: ignore[index]


def test_computed_values(log: Log) -> None:
    log.add("page", anon="a1", ts=T0, context={"locale": "de-AT", "timezone": "Europe/Vienna"})
    log.add("identify", user_id="u1", anon="a1", trusted=True, ts=T0 + 1000,
            traits={"address": {"country": "se"}, "subscriptions": {"sms": False,
                    "email": {"newsletter": False}}, "consent": {"marketing": True}})
    for i, (order, amount) in enumerate([("o1", 100), ("o2", 50.5), ("o1", 100)]):
        log.add("track", event="Order Completed", user_id="u1", trusted=True, origin="server",
                ts=T0 + (i + 2) * DAY, properties={"order_id": order, "revenue": amount})
    log.add("track", event="Order Completed", user_id="u1", trusted=True, ts=T0 + 9 * DAY,
            origin="store", properties={"products": [{"price": 10, "quantity": 2}]})
    for i in range(3):
        log.add("track", event="Email Opened", user_id="u1", trusted=True, origin="email",
                ts=T0 + i * DAY)
    log.add("track", event="Unsubscribed", user_id="u1", trusted=True, origin="email",
            ts=T0 + 10 * DAY, properties={"channel": "email", "topic": "offers"})
    log.process()
    c = log.profile("u1")["computed"]  # type: ignore[index]
    assert c["orders"] == 3  # o1 twice counts once
    assert c["revenue"] == 170.5
    assert c["averageOrderValue"] == round(170.5 / 3, 2)
    assert c["lastOrderAt"] == T0 + 9 * DAY
    assert c["firstSeen"] == T0 and c["lastSeen"] == T0 + 10 * DAY
    assert c["origins"] == ["email", "server", "store", "web"]
    assert c["preferredChannel"] == "email"
    assert (c["language"], c["timezone"], c["country"]) == ("de", "Europe/Vienna", "SE")
    assert c["subscriptions"] == {
        "email": {"subscribed": None, "topics": {"newsletter": False, "offers": False}},
        "sms": {"subscribed": False, "topics": {}}}
    assert c["consent"] == {"marketing": True}


def test_preferred_channel_follows_sessions(log: Log) -> None:
    for day in range(4):
        log.add("screen", user_id="u1", origin="app", ts=T0 + day * DAY)
        log.add("screen", user_id="u1", origin="app", ts=T0 + day * DAY + 60_000)
    log.add("track", event="Email Link Clicked", user_id="u1", origin="email")
    log.process()
    c = log.profile("u1")["computed"]  # type: ignore[index]
    assert c["engagement"] == {"app": 4, "email": 1}
    assert c["preferredChannel"] == "app"


def test_timeline_spans_origins_and_merged_history(log: Log) -> None:
    log.add("page", anon="a1", origin="web")
    log.add("screen", anon="d1", origin="app")
    log.add("identify", user_id="u1", anon="a1")
    log.add("identify", user_id="u1", anon="d1")
    log.add("track", event="Order Completed", user_id="u1", origin="store", trusted=True)
    log.process()
    p = export_json(log.conn, log.pid("u1"))  # type: ignore[arg-type]
    assert p is not None
    assert [e["origin"] for e in p["events"]] == ["web", "app", "web", "web", "store"]


class Boom:
    name = "boom"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        raise RuntimeError("crash mid-batch")


def test_a_failed_batch_leaves_no_profile_behind(log: Log) -> None:
    log.add("identify", user_id="u1", anon="a1", traits={"x": 1})
    proc = Processor(log.db, [ProfilesStep(), Boom()])
    with pytest.raises(RuntimeError):
        proc.run_once()
    proc.close()
    assert log.conn.execute("SELECT count(*) FROM profiles").fetchone()[0] == 0
    assert log.conn.execute("SELECT count(*) FROM identities").fetchone()[0] == 0
    log.process()
    assert log.profile("a1") is not None


def _random_history(log: Log, seed: int, n: int = 300) -> None:
    rnd = random.Random(seed)
    users = [f"u{i}" for i in range(12)] + ["null"]
    anons = [f"a{i}" for i in range(25)] + ["undefined"]
    for _ in range(n):
        kind = rnd.choice(["page", "track", "track", "identify", "alias"])
        user = rnd.choice(users) if rnd.random() < 0.5 or kind == "alias" else None
        anon = rnd.choice(anons) if user is None or rnd.random() < 0.5 else None
        ts = T0 + rnd.randrange(0, 30 * DAY)
        log.add(kind, user_id=user, anon=anon, trusted=rnd.random() < 0.04, ts=ts,
                event=rnd.choice(["Order Completed", "Product Viewed", "Email Opened"])
                if kind == "track" else None,
                origin=rnd.choice(["web", "app", "email", "server"]),
                previous_id=rnd.choice(anons + users) if kind == "alias" else None,
                traits={"plan": rnd.choice("abc"), "email": f"{user}@x.io"}
                if kind == "identify" else None,
                properties={"order_id": f"o{rnd.randrange(40)}", "revenue": rnd.randrange(99),
                            "category": rnd.choice(["shoes", "hats"])})


def test_rebuild_equals_the_live_processor(log: Log) -> None:
    _random_history(log, seed=7)
    log.process()
    live = snapshot(log.conn)
    assert len(live) > 3
    replayed = rebuild(log.conn, log.clock, batch_size=13)
    assert replayed == log.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert snapshot(log.conn) == live
    # rebuild leaves events after the processor's cursor to the processor
    log.add("identify", user_id="late", anon="a1")
    rebuild(log.conn, log.clock)
    assert log.profile("late") is None
    log.process()
    assert log.profile("late") is not None


def test_rebuild_refuses_while_serve_holds_the_lease(log: Log) -> None:
    assert leases.acquire(log.conn, LEASE_NAME, "serve", log.clock.now(), 60)
    with pytest.raises(RebuildBusy):
        rebuild(log.conn, log.clock)


def test_forget_deletes_and_suppresses(log: Log) -> None:
    log.add("page", anon="a1")
    log.add("identify", user_id="u1", anon="a1", trusted=True, traits={"email": "ann@x.io"})
    log.add("track", event="Order Completed", user_id="u1", trusted=True)
    log.add("identify", user_id="u2", anon="a2")
    log.add("page", anon="a1")  # not processed yet when forgotten
    log.processor.run_once()
    done = forget(log.conn, "Ann@X.io", T0)
    assert done.events_deleted == 5 - 1  # all of Ann's events, processed or not
    assert sorted(done.identities) == [("anonymous_id", "a1"), ("email", "ann@x.io"),
                                       ("user_id", "u1")]
    assert log.profile("u1") is None
    assert is_suppressed(log.conn, "email", "ann@x.io")
    # the hash is keyed: the plain identity is nowhere in the database
    dump = dump_text(log.conn)
    assert "ann@x.io" not in dump and '"u1"' not in dump
    # later events for any of her identities are dropped (and deleted from the log)
    log.add("track", event="Product Viewed", user_id="u1", trusted=True)
    log.add("identify", anon="fresh", trusted=True, traits={"email": "ann@x.io"})
    log.add("page", anon="a1")
    log.add("page", anon="a2")
    log.process()
    assert log.profile("u1") is None and log.profile("fresh") is None
    remaining = [r[0] for r in log.conn.execute("SELECT anonymous_id FROM events")]
    assert remaining == ["a2", "a2"]
    # rebuild honours the suppression too and agrees with the live profiles
    live = snapshot(log.conn)
    rebuild(log.conn, log.clock)
    assert snapshot(log.conn) == live


def test_forget_reads_the_log_before_it_takes_the_write_lock(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    # #18: finding a person's events not yet applied reads the whole log; on SQLite the
    # one write lock held through that read kept ingest waiting for seconds at 10M events.
    log.add("page", anon="a1")
    log.add("identify", user_id="u1", anon="a1", trusted=True, traits={"email": "ann@x.io"})
    log.add("page", anon="a2")  # someone else
    log.process()
    log.add("page", anon="a1")  # logged, not applied yet
    sqlite = log.conn.dialect.name == "sqlite"
    locked: list[str] = []
    read = privacy_store.read_logged_events

    def read_then_log_more(conn: Connection, profile_id: int) -> Any:
        logged = read(conn, profile_id)
        assert (logged is not None) == sqlite
        log.add("page", user_id="u1")  # logged after that read, before the lock
        if sqlite:
            conn.set_trace_callback(locked.append)  # type: ignore[attr-defined]
        return logged

    monkeypatch.setattr(privacy_store, "read_logged_events", read_then_log_more)
    done = forget(log.conn, "u1", T0)
    if sqlite:
        log.conn.set_trace_callback(None)
    assert done.events_deleted == 4  # the two applied, the one before and after the read
    assert [r[0] for r in log.conn.execute("SELECT anonymous_id FROM events")] == ["a2"]
    if sqlite:
        assert locked[0] == "BEGIN IMMEDIATE"
        assert any(sql.split()[0] in ("SELECT", "DELETE", "UPDATE") for sql in locked)
        # Nor any other table: the person's rows are found by index (migration 33 for
        # merges, queued on-site messages and sign-ups).
        assert full_scans(log.conn, locked) == {}


def test_forget_unknown_person_suppresses_ahead(log: Log) -> None:
    done = forget(log.conn, "future@x.io", T0)
    assert done.profile_id is None
    log.add("identify", user_id="u9", trusted=True, traits={"email": "future@x.io"})
    log.process()
    assert log.profile("u9") is None
