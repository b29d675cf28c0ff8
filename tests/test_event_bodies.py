"""The event log stores each message without the keys its columns hold, and every
reader gets the whole message back (store/events.py `slim_body`, `full_body`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kanal_testing import App, query

from kanal_collector.clock import utc_iso, utc_iso_ms
from kanal_collector.own_events import own_event
from kanal_collector.profiles.importer import to_event
from kanal_collector.store import timeline as timeline_store
from kanal_collector.store.db import transaction
from kanal_collector.store.events import (
    BODY_COLUMNS,
    EventRow,
    append_events,
    full_body,
    read_body,
    recent_events,
    slim_body,
)

T = 1_790_000_000_123
ISO = "2026-09-21T14:13:20.123Z"
R = T + 2_000
R_ISO = "2026-09-21T14:13:22.123Z"
DUPLICATED = {"messageId", "type", "event", "name", "userId", "anonymousId", "timestamp",
              "receivedAt"}


def columns(body: dict[str, Any], *, ts: int = T, received: int = R,
            **override: Any) -> tuple[Any, ...]:
    """The column values a writer stores beside `body`, as enrich derives them."""
    kind = body["type"]
    name = body.get("event") if kind == "track" else body.get("name")
    cols = {"message_id": body["messageId"], "type_": kind,
            "event": name if isinstance(name, str) else None,
            "user_id": body.get("userId"), "anonymous_id": body.get("anonymousId"),
            "timestamp": ts, "received_at": received, **override}
    return tuple(cols.values())


def message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "messageId": "m-1", "timestamp": ISO, "receivedAt": R_ISO,
            "context": {"library": {"name": "t"}}, **fields}


SHAPES = [
    message("track", event="Order Completed", userId="u1", properties={"revenue": 9.5}),
    message("track", event="Product Viewed", anonymousId="a1"),
    message("track", event="X", userId="u1", anonymousId="a1", name="also a name"),
    message("page", name="Home", anonymousId="a1", properties={"url": "/"}),
    message("page", anonymousId="a1"),  # no name: the event column is NULL
    message("page", name="Home", event="not the page's name", userId="u1"),
    message("screen", name="Cart", userId="u1"),
    message("identify", userId="u1", traits={"email": "a@example.com"}),
    message("identify", anonymousId="a1", name="a top-level name"),
    message("group", userId="u1", groupId="g1"),
    message("alias", userId="u1", previousId="a1"),
    message("track", event="É ✓", userId="ü", properties={}),
    {"type": "track", "messageId": "m-2", "event": "Bare", "userId": "u2"},  # no times
]


@pytest.mark.parametrize("body", SHAPES)
def test_slim_then_full_gives_the_message_back(body: dict[str, Any]) -> None:
    cols = columns(body)
    slim = slim_body(body, *cols)
    assert slim is not body and body == SHAPES[SHAPES.index(body)]  # the input untouched
    assert full_body(json.loads(json.dumps(slim)), *cols) == {
        **body, "timestamp": ISO, "receivedAt": R_ISO}  # (added where the body had none)


@pytest.mark.parametrize("body", SHAPES[:-1])
def test_slim_leaves_out_every_key_the_columns_hold(body: dict[str, Any]) -> None:
    slim = slim_body(body, *columns(body))
    kept = DUPLICATED & set(slim)
    # What stays is a key no column holds: a track's name, a page's event.
    assert kept <= ({"name"} if body["type"] == "track" else {"event"})
    assert set(body) - set(slim) == DUPLICATED & set(body) - kept


@pytest.mark.parametrize("field,value,override", [
    ("userId", 42, {"user_id": "42"}),              # Segment allows numbers; the column is text
    ("anonymousId", 7.5, {"anonymous_id": "7.5"}),
    ("messageId", "m-1 ", {"message_id": "m-1"}),
    ("event", "Order Completed", {"event": "order completed"}),
    ("timestamp", "2026-09-21T14:13:20.123456Z", {}),    # microseconds
    ("timestamp", "2026-09-21T14:13:20.123+00:00", {}),  # another offset form
    ("timestamp", "2026-09-21T14:13:20Z", {"timestamp": T - 123}),  # no fraction
    ("timestamp", "2026-09-21T16:13:20.123+02:00", {}),
    ("timestamp", ISO, {"timestamp": T + 1}),  # a millisecond apart
    ("timestamp", T, {}),  # a number, not a text
    ("receivedAt", "2026-09-21T14:13:22.123", {}),  # no Z
    ("receivedAt", R_ISO, {"received_at": None}),
    ("userId", None, {"user_id": None}),
    ("type", "track", {"type_": "Track", "event": None}),
])
def test_a_value_the_columns_do_not_give_back_exactly_stays(field: str, value: Any,
                                                            override: dict[str, Any]) -> None:
    body = message("track", event="Order Completed", userId="u1", anonymousId="a1")
    body[field] = value
    cols = columns(body, **override)
    slim = slim_body(body, *cols)
    assert field in slim and slim[field] == value and type(slim[field]) is type(value)
    assert full_body(json.loads(json.dumps(slim)), *cols) == body


def test_full_body_adds_only_what_is_absent_and_not_null() -> None:
    old = message("track", event="Old", userId="u-old")  # a row stored whole
    assert full_body(dict(old), "other", "track", "Other", "u9", "a9", 0, 0) == {
        **old, "anonymousId": "a9"}  # the one key it lacked
    assert full_body({}, "m", "page", None, None, None, T, R) == {
        "messageId": "m", "type": "page", "timestamp": ISO, "receivedAt": R_ISO}
    assert full_body({}, "m", "screen", "S", None, "a", T, R)["name"] == "S"
    assert "event" not in full_body({}, "m", "screen", "S", None, "a", T, R)
    assert full_body({}, "m", "track", "E", "u", None, T, R)["event"] == "E"
    assert "timestamp" not in full_body({}, "m", "track", "E", "u", None, 10**20, R)
    assert full_body([1, 2], "m", "track", "E", "u", None, T, R) == [1, 2]


@pytest.mark.parametrize("ms", [0, 1, 999, 1000, T, 951_782_400_000,  # 2000-02-29
                                4_102_444_799_999])
def test_utc_iso_ms_is_the_stored_form(ms: int) -> None:
    assert utc_iso_ms(ms) == utc_iso(ms / 1000)


def test_utc_iso_ms_is_exact_far_from_1970_and_refuses_what_it_cannot_write() -> None:
    assert utc_iso_ms(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z"
    # (utc_iso(253_402_300_799.999) says .998: a float holds no exact millisecond there)
    assert utc_iso_ms(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"
    assert utc_iso_ms(-1) == "1969-12-31T23:59:59.999Z"
    for ms in (-62_135_596_800_001, 253_402_300_800_000, 10**30):
        with pytest.raises(ValueError):
            utc_iso_ms(ms)


def test_kanal_s_own_writers_store_slim_bodies() -> None:
    row = own_event(name="Email Opened", message_id="own-1", origin="email",
                    properties={"outbox_id": 1}, user_id="u1", anonymous_id=None,
                    source_id=1, now_ms=T)
    assert set(json.loads(row.body)) == {"properties", "context"}
    assert read_body(row[1:6] + row[9:]) == {
        "type": "track", "event": "Email Opened", "messageId": "own-1", "userId": "u1",
        "properties": {"outbox_id": 1}, "timestamp": ISO, "receivedAt": ISO,
        "context": {"library": {"name": "kanal"}}}
    imported = to_event({"type": "track", "event": "Bought", "userId": "u1",
                         "timestamp": ISO}, source_id=1, received_ms=R, occurrence=1)
    assert DUPLICATED & set(json.loads(imported.body)) == set()
    assert read_body(imported[1:6] + imported[9:])["timestamp"] == ISO


# -- through the collector ---------------------------------------------------------------


def _post(env: App, path: str, body: Any, key: str) -> Any:
    token = base64.b64encode(f"{env.keys[key]}:".encode()).decode()
    return env.client.post(path, data=json.dumps(body), headers={
        "Content-Type": "application/json", "Authorization": f"Basic {token}"})


def _admin(env: App, path: str) -> Any:
    r = env.client.get(path, headers={"Authorization": f"Bearer {env.keys['admin']}"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


SENT = [
    {"type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": "a1",
     "messageId": "m-track", "timestamp": ISO, "properties": {"order_id": "o1", "revenue": 5}},
    {"type": "page", "name": "Home", "anonymousId": "a1", "messageId": "m-page",
     "properties": {"url": "https://shop.example/"}},
    {"type": "identify", "userId": "u1", "messageId": "m-identify",
     "traits": {"email": "u1@example.com"}},
]


def test_ingest_stores_slim_bodies_and_every_reader_gets_them_whole(kanal_app: App) -> None:
    r = _post(kanal_app, "/v1/batch", {"batch": SENT}, "secret")
    assert r.get_json()["stored"] == 3
    stored = {m: json.loads(b) for m, b in query(
        kanal_app.db, "SELECT message_id, body FROM events")}
    for body in stored.values():
        assert DUPLICATED & set(body) == set(), body
    assert stored["m-track"]["properties"] == {"order_id": "o1", "revenue": 5}
    assert stored["m-track"]["originalTimestamp"] == ISO  # what enrich adds stays

    received = utc_iso(kanal_app.clock.now())
    whole = {m["messageId"]: {**m, "receivedAt": received} for m in SENT}
    whole["m-page"]["timestamp"] = whole["m-identify"]["timestamp"] = received

    def check(body: dict[str, Any]) -> None:
        expected = whole[body["messageId"]]
        assert {k: v for k, v in body.items() if k in expected} == expected

    conn = kanal_app.app.extensions["kanal"].db.conn()
    for event in recent_events(conn):  # StoredEvent: the processor, the API, the CLI
        check(event.body)
    for event in _admin(kanal_app, "/api/events")["events"]:
        check(event["body"])

    kanal_app.process()
    pid = _admin(kanal_app, "/api/profiles/lookup?id=u1")["id"]
    export = _admin(kanal_app, f"/api/profiles/{pid}/export")
    assert len(export["events"]) == 3
    for event in export["events"]:
        check(event["body"])
    timeline = _admin(kanal_app, f"/api/profiles/{pid}/timeline")["events"]
    assert {(e["type"], e["event"], e["userId"], e["anonymousId"]) for e in timeline} == {
        ("track", "Order Completed", "u1", "a1"), ("page", "Home", None, "a1"),
        ("identify", None, "u1", None)}
    [order] = timeline_store.profile_events_since(conn, pid, "Order Completed", 0)
    check(order)  # segments and on-site read these (the on-site pull reads timestamp)
    assert [check(b) for b in timeline_store.profiles_events_since(
        conn, [pid], "Order Completed", 0)[pid]] == [None]


def test_a_row_stored_whole_reads_back_unchanged(kanal_app: App) -> None:
    old = {"messageId": "old-1", "type": "track", "event": "Old", "userId": "u1",
           "anonymousId": "a1", "timestamp": "2026-09-21T14:13:20.123456Z",
           "receivedAt": R_ISO, "properties": {"x": 1}, "context": {}}
    text = json.dumps(old)
    conn = kanal_app.app.extensions["kanal"].db.conn()
    with transaction(conn):
        append_events(conn, [EventRow(1, "old-1", "track", "Old", "u1", "a1", "server",
                                      "secret", 1, T, R, text)])
    assert query(kanal_app.db, "SELECT body FROM events") == [(text,)]
    [event] = recent_events(conn)
    assert event.body == old and list(event.body) == list(old)
    [row] = query(kanal_app.db, f"SELECT {BODY_COLUMNS} FROM events")
    assert read_body(row) == old


def test_the_size_limit_still_counts_what_the_columns_hold(kanal_app: App) -> None:
    # A page's name has no length limit of its own: 40 KB of it is over the 32 KB limit
    # even though the stored body would leave it to the event column.
    big = {"type": "page", "anonymousId": "a1", "name": "n" * 40_000}
    r = _post(kanal_app, "/v1/batch", {"batch": [big, {**big, "name": "small"}]}, "public")
    assert r.get_json()["stored"] == 1 and r.get_json()["failed"] == 1
    [(reason,)] = query(kanal_app.db, "SELECT reason FROM failed_events")
    assert "over 32 KB" in reason
