"""The batch fast paths of ingest answer exactly what the plain ones do.

Work shared by a request's messages (key, address, User-Agent, receive time) is done
once per request; timestamps are parsed through a cache; nesting depth is counted from
bytes. None of it may change what is stored or refused.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import db_at

from kanal_collector.ingest.body import MAX_DEPTH, _depth, parse_json
from kanal_collector.ingest.enrich import Enricher, RequestInfo, enrich
from kanal_collector.ingest.spec import InvalidMessage, normalize, parse_time
from kanal_collector.ingest.suppress import Suppressions
from kanal_collector.ingest.writer import EventWriter
from kanal_collector.profiles.privacy import forget
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import EventRow
from kanal_collector.store.keys import KeyInfo
from kanal_collector.store.schema import migrate

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1")
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(db_at(tmp_path / "k.db"))
    migrate(database.conn())
    with transaction(database.conn()) as conn:
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', 0)")
    yield database
    database.close()


def _key(kind: str) -> KeyInfo:
    return KeyInfo(1, kind, 1, "default", None, "pk_x", 0, None)


@pytest.mark.parametrize("text, depth", [
    ('["[", "]"]', 1),
    ('{"a": "{{{{", "b": ["]]]", "[["]}', 2),
    ('["", "", ""]', 1),
    ('[["\\"[", "\\\\"], "]"]', 2),
    ('{"k": {"k": {"k": "}}}}}"}}}', 3),
    ('"[[[[["', 0),
    ("[" * 33 + "]" * 33, MAX_DEPTH + 1),
    ("[" * 32 + "]" * 32, 32),
    ('[' * 31 + '"]]]]"' + ']' * 31, 31),
])
def test_depth_ignores_brackets_inside_strings(text: str, depth: int) -> None:
    json.loads(text)  # the cases are valid JSON
    assert _depth(text.encode()) == depth


def test_too_deep_is_refused_and_32_levels_are_not() -> None:
    assert parse_json(b'{"a":' * 31 + b'"[[[[[[[["' + b"}" * 31) is not None
    with pytest.raises(Exception, match="nested deeper"):
        parse_json(b"[" * 33 + b"]" * 33)


def test_parse_time_gives_the_same_answer_and_errors_every_time() -> None:
    for _ in range(3):  # the second and third answers come from the cache
        assert parse_time("2026-01-01T00:00:00Z", "t") == 1767225600.0
        assert parse_time("2026-01-01T01:00:00+01:00", "sentAt") == 1767225600.0
        with pytest.raises(InvalidMessage, match="sentAt is not an ISO 8601 timestamp: 'soon'"):
            parse_time("soon", "sentAt")
        with pytest.raises(InvalidMessage, match="^timestamp is out of range$"):
            parse_time("0999-01-01T00:00:00Z", "timestamp")
    long_text = "2026-01-01T00:00:00.000000+00:00" + " " * 20  # too long to be cached
    assert parse_time(long_text, "t") == 1767225600.0
    with pytest.raises(InvalidMessage, match="t is not an ISO 8601 timestamp"):
        parse_time("x" * 100, "t")


def _messages() -> list[dict[str, Any]]:
    base = {"type": "track", "event": "Added", "anonymousId": "a1",
            "timestamp": "2026-05-04T10:15:01.123Z",
            "context": {"page": {"url": "https://s.se/p?utm_source=nl&utm_campaign=spring"}}}
    variants: list[dict[str, Any]] = [
        base,
        {**base, "context": {"userAgent": BOT, "ip": "10.9.8.7", "library": {"name": "x"}}},
        {**base, "context": {"userAgent": IPHONE, "kanal": {"forged": True}}},
        {**base, "sentAt": "2026-05-04T10:15:02.000Z", "timestamp": "2026-05-04 10:15:01"},
        {"type": "identify", "userId": "u1", "originalTimestamp": "2026-05-04T10:15:01Z",
         "context": {"userHash": "0" * 64, "app": {"name": "A"}}},
        {"type": "page", "userId": 42, "name": "Home"},
        {**base, "context": {"ip": "", "userAgent": 7, "campaign": {"name": "given"}}},
    ]
    return variants


@pytest.mark.parametrize("kind", ["public", "secret"])
@pytest.mark.parametrize("anonymize", [False, True])
@pytest.mark.parametrize("request_ua", [IPHONE, None, ""])
def test_one_enricher_per_request_stores_what_enrich_stores(
        kind: str, anonymize: bool, request_ua: str | None) -> None:
    request = RequestInfo(ip="192.0.2.77", user_agent=request_ua, received_at=1777900000.5,
                          batch_sent_at="2026-05-04T10:15:03.000Z")
    shared = Enricher(_key(kind), request, anonymize=anonymize, secrets=["s1"])
    for message in _messages():
        one = normalize(copy.deepcopy(message))
        other = copy.deepcopy(one)
        row = shared(one)
        assert isinstance(row, EventRow)
        assert row == enrich(other, _key(kind), request, anonymize=anonymize, secrets=["s1"])
        assert one == other
    # What a browser key's message says of its address is replaced by the request's.
    row = shared(normalize({"type": "track", "event": "E", "anonymousId": "a",
                            "context": {"ip": "10.9.8.7"}}))
    stored_ip = json.loads(row.body)["context"]["ip"]
    expected = "10.9.8.7" if kind == "secret" else "192.0.2.77"
    assert stored_ip == (expected.rsplit(".", 1)[0] + ".0" if anonymize else expected)


def test_writer_is_busy_while_a_write_waits_for_the_lock(db: Database) -> None:
    writer = EventWriter(db)
    assert not writer.busy()
    other = db.connect()
    other.begin()  # the processor holding the write lock while it appends, say
    other.before_append()
    done = threading.Event()

    def write() -> None:
        writer.write([EventRow(1, "m1", "track", "E", None, "a", "web", "public", 0, 0, 0, "{}")])
        done.set()

    thread = threading.Thread(target=write)
    try:
        thread.start()
        # Long after the last commit: busy only because the write is waiting.
        assert not done.wait(0.3)
        assert writer.busy(window=0.0)
    finally:
        other.rollback()
        other.close()
    thread.join(10)
    assert done.is_set()
    assert not writer.busy(window=0.0)
    assert db.conn().execute("SELECT count(*) FROM events").fetchone()[0] == 1
    writer.close()


def test_suppressions_are_active_only_once_someone_is_forgotten(db: Database) -> None:
    now = [0.0]
    suppressions = Suppressions(db, monotonic=lambda: now[0])
    msg = {"type": "track", "userId": "u-gone", "event": "E"}
    assert not suppressions.active()
    assert not suppressions.blocks(msg)
    forget(db.conn(), "u-gone", 0)
    now[0] += 10  # past the cached copy's lifetime
    assert suppressions.active()
    assert suppressions.blocks(msg)
    assert not suppressions.blocks({"type": "track", "userId": "u-kept", "event": "E"})


def test_multi_row_append_keeps_the_first_of_duplicates_in_order(db: Database) -> None:
    from kanal_collector.store.events import append_events, recent_events

    def row(message_id: str, body: str) -> EventRow:
        return EventRow(1, message_id, "track", "E", None, "a", "web", "public", 0, 0, 0, body)

    rows = [row(f"m{i}", f'{{"n":{i}}}') for i in range(150)]
    rows.insert(10, row("m5", '{"n":"second m5"}'))      # a duplicate in the same chunk
    rows.insert(120, row("m20", '{"n":"second m20"}'))   # and one in the next chunk
    with transaction(db.conn()) as conn:
        assert append_events(conn, rows) == 150
        assert append_events(conn, [row("m1", "{}")]) == 0
        assert append_events(conn, [row("m1", "{}"), row("new", "{}")]) == 1
        assert append_events(conn, []) == 0
    stored = {e.message_id: e for e in recent_events(db.conn(), limit=1000)}
    assert stored["m5"].body["n"] == 5 and stored["m20"].body["n"] == 20
    ids = [e.message_id for e in sorted(stored.values(), key=lambda e: e.id)]
    assert ids == [f"m{i}" for i in range(150)] + ["new"]
