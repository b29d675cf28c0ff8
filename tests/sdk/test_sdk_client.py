"""The client: what a call sends, copy semantics, argument errors, modes, queue limits."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import logging
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from _sdk_sink import Sink

import kanal

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MakeClient = Callable[..., kanal.Client]


def test_each_call_sends_a_segment_message(sink: Sink, make_client: MakeClient) -> None:
    client = make_client("sk_123", host=sink.url)
    client.identify("u1", {"email": "ada@example.com"})
    client.track("u1", "Signed Up", {"plan": "pro"})
    client.page("u1", "Home", {"path": "/"}, category="Docs")
    client.screen(None, "Settings", anonymous_id="a1")
    client.group("u1", "acme", {"seats": 5})
    client.alias("a1", "u1")
    assert client.flush(timeout=10)
    events = sink.wait_for(6)
    assert [e["type"] for e in events] == ["identify", "track", "page", "screen", "group",
                                           "alias"]
    identify, track, page, screen, group, alias = events
    assert identify["userId"] == "u1" and identify["traits"] == {"email": "ada@example.com"}
    assert track["event"] == "Signed Up" and track["properties"] == {"plan": "pro"}
    assert page["name"] == "Home" and page["category"] == "Docs"
    assert screen["anonymousId"] == "a1" and "userId" not in screen
    assert group["groupId"] == "acme" and group["traits"] == {"seats": 5}
    assert alias["previousId"] == "a1" and alias["userId"] == "u1"
    ids = set()
    for event in events:
        assert uuid.UUID(event["messageId"]).version == 4
        ids.add(event["messageId"])
        assert ISO_UTC.match(event["timestamp"])
        assert event["context"]["library"] == {"name": "kanal-python",
                                               "version": kanal.__version__}
    assert len(ids) == 6
    request = sink.requests[0]
    assert request["path"] == "/v1/batch"
    assert ISO_UTC.match(request["body"]["sentAt"])
    user, _, password = base64.b64decode(
        request["headers"]["Authorization"].removeprefix("Basic ")).decode().partition(":")
    assert (user, password) == ("sk_123", "")
    assert request["headers"]["Content-Type"] == "application/json"


def test_caller_values_are_kept_and_converted(sink: Sink, make_client: MakeClient) -> None:
    client = make_client(host=sink.url)
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    client.track(
        42, "Paid", {"amount": decimal.Decimal("9.90"), "at": dt.date(2024, 5, 1),
                     "tags": ("a", "b"), "nan": float("nan")},
        context={"ip": "1.2.3.4", "library": "spoofed"}, timestamp=when,
        integrations={"All": False}, message_id="order-1001",
    )
    assert client.flush(timeout=10)
    (event,) = sink.wait_for(1)
    assert event["userId"] == "42"
    assert event["properties"] == {"amount": 9.9, "at": "2024-05-01", "tags": ["a", "b"],
                                   "nan": None}
    assert event["context"]["ip"] == "1.2.3.4"
    assert event["context"]["library"]["name"] == "kanal-python"
    assert event["timestamp"] == "2024-05-01T10:30:00.000Z"
    assert event["integrations"] == {"All": False}
    assert event["messageId"] == "order-1001"


def test_a_later_change_by_the_caller_never_changes_the_event(
    sink: Sink, make_client: MakeClient,
) -> None:
    client = make_client(host=sink.url, flush_interval=60)
    properties: dict[str, Any] = {"cart": {"items": [{"sku": "a", "qty": 1}]}, "n": 1}
    traits: dict[str, Any] = {"address": {"city": "Oslo"}}
    context: dict[str, Any] = {"campaign": {"name": "spring"}}
    client.track("u1", "Cart Viewed", properties, context=context)
    client.identify("u1", traits)
    properties["n"] = 2
    properties["cart"]["items"][0]["qty"] = 99
    properties["cart"]["items"].append({"sku": "b"})
    traits["address"]["city"] = "Bergen"
    context["campaign"]["name"] = "autumn"
    assert client.flush(timeout=10)
    track, identify = sink.wait_for(2)
    assert track["properties"] == {"cart": {"items": [{"sku": "a", "qty": 1}]}, "n": 1}
    assert track["context"]["campaign"] == {"name": "spring"}
    assert identify["traits"] == {"address": {"city": "Oslo"}}


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda c: c.track("u1", None), ValueError, "track(): event is required"),
    (lambda c: c.track("u1", 5), TypeError, "track(): event must be a str"),
    (lambda c: c.track(None, "X"), ValueError, "track(): user_id or anonymous_id"),
    (lambda c: c.track("", "X"), ValueError, "track(): user_id must not be empty"),
    (lambda c: c.track(["u"], "X"), TypeError, "track(): user_id must be a str or int"),
    (lambda c: c.track("u1", "X", [1]), TypeError, "track(): properties must be a dict"),
    (lambda c: c.track("u1", "X", context="x"), TypeError, "track(): context must be a dict"),
    (lambda c: c.track("u1", "X", timestamp=1), TypeError, "track(): timestamp must be"),
    (lambda c: c.track("u1", "X", timestamp="soon"), ValueError, "not ISO 8601"),
    (lambda c: c.identify("u1", "x"), TypeError, "identify(): traits must be a dict"),
    (lambda c: c.identify(True), TypeError, "identify(): user_id must be a str or int"),
    (lambda c: c.group("u1"), ValueError, "group(): group_id is required"),
    (lambda c: c.alias(None, "u1"), ValueError, "alias(): previous_id is required"),
    (lambda c: c.page("u1", 3), TypeError, "page(): name must be a str"),
    (lambda c: c.track("u1", "X", message_id=1.5), TypeError, "message_id must be"),
])
def test_bad_arguments_raise_naming_the_argument(
    make_client: MakeClient, call: Callable[[kanal.Client], None], error: type[Exception],
    message: str,
) -> None:
    client = make_client(send=False)
    with pytest.raises(error, match=re.escape(message)):
        call(client)


@pytest.mark.parametrize(("option", "value", "error"), [
    ("flush_at", 0, ValueError), ("flush_at", 2501, ValueError), ("flush_at", 1.5, TypeError),
    ("max_queue_size", 0, ValueError), ("max_retries", -1, ValueError),
    ("timeout", 0, ValueError), ("flush_interval", "1", TypeError),
    ("host", "127.0.0.1:8000", ValueError), ("on_error", "print", TypeError),
])
def test_bad_options_raise_naming_the_option(option: str, value: Any, error: type) -> None:
    with pytest.raises(error, match=option):
        kanal.Client("k", **{option: value})


def test_write_key_is_required() -> None:
    with pytest.raises(ValueError, match="write_key"):
        kanal.Client("")


def test_disabled_and_send_false_never_touch_the_network(
    sink: Sink, make_client: MakeClient,
) -> None:
    for client in (make_client(host=sink.url, disabled=True),
                   make_client(host=sink.url, send=False)):
        client.track("u1", "X")
        assert client.flush(timeout=1)
        with pytest.raises(ValueError):
            client.track(None, "X")  # arguments are still checked
    for client in (make_client(host=sink.url, disabled=True),
                   make_client(host=sink.url, send=False)):
        client.shutdown()
    assert sink.requests == []


def test_sync_mode_sends_in_the_calling_thread(sink: Sink, make_client: MakeClient) -> None:
    client = make_client(host=sink.url, sync_mode=True)
    client.track("u1", "Bought")
    assert len(sink.requests) == 1  # before any flush: it was sent by the call itself
    assert sink.events()[0]["event"] == "Bought"
    assert not client._started
    assert client.sent == 1


def test_sync_mode_never_raises(make_client: MakeClient) -> None:
    errors: list[Exception] = []
    client = make_client(host="http://127.0.0.1:9", sync_mode=True, max_retries=0,
                         timeout=2, on_error=lambda exc, batch: errors.append(exc))
    client.track("u1", "Bought")  # nothing listens on port 9
    assert isinstance(errors[0], kanal.TransportError)
    assert client.dropped == 1


def test_full_queue_drops_new_events_without_blocking(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture,
) -> None:
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = make_client(max_queue_size=3, on_error=lambda e, b: errors.append((e, b)))
    client._started = True  # hold the consumer back so the queue fills up
    with caplog.at_level(logging.ERROR, logger="kanal"):
        for i in range(5):
            client.track("u1", "X", {"i": i})
    client._started = False
    assert len(client._queue) == 3
    assert client.dropped == 2
    assert [type(e) for e, _ in errors] == [kanal.QueueFullError] * 2
    assert errors[0][1][0]["properties"] == {"i": 3}
    assert "dropped an event" in caplog.text


def test_oversize_event_is_dropped_with_on_error(sink: Sink, make_client: MakeClient) -> None:
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    client = make_client(host=sink.url, on_error=lambda e, b: errors.append((e, b)))
    client.track("u1", "Huge", {"blob": "x" * 40_000})
    client.track("u1", "Small")
    assert client.flush(timeout=10)
    assert [e["event"] for e in sink.wait_for(1)] == ["Small"]
    assert isinstance(errors[0][0], kanal.MessageTooLargeError)
    assert errors[0][1][0]["event"] == "Huge"
    assert client.dropped == 1


def test_broken_on_error_never_reaches_the_caller(make_client: MakeClient) -> None:
    def on_error(exc: Exception, batch: list[dict[str, Any]]) -> None:
        raise RuntimeError("my callback is broken")

    client = make_client(max_queue_size=1, on_error=on_error, sync_mode=False)
    client._started = True
    client.track("u1", "X")
    client.track("u1", "X")  # dropped: on_error raises, swallowed and logged
    client._started = False
    assert client.dropped == 1


def test_calls_after_shutdown_are_dropped(sink: Sink, make_client: MakeClient) -> None:
    client = make_client(host=sink.url)
    client.track("u1", "Before")
    client.shutdown()
    client.track("u1", "After")
    client.shutdown()  # twice is fine
    assert [e["event"] for e in sink.events()] == ["Before"]
    assert client.dropped == 1


def test_context_manager_flushes(sink: Sink) -> None:
    with kanal.Client("k", host=sink.url, flush_interval=60) as client:
        client.track("u1", "X")
    assert [e["event"] for e in sink.events()] == ["X"]


def test_module_level_convenience(sink: Sink) -> None:
    kanal.write_key = "sk_module"
    kanal.host = sink.url
    kanal.identify("u1", {"name": "Ada"})
    kanal.track("u1", "Signed Up")
    assert kanal.flush(timeout=10)
    assert [e["type"] for e in sink.wait_for(2)] == ["identify", "track"]
    kanal.shutdown()
    assert kanal._default_client is None


def test_module_level_without_a_key_logs_and_drops(caplog: pytest.LogCaptureFixture) -> None:
    kanal.write_key = None
    with caplog.at_level(logging.ERROR, logger="kanal"):
        kanal.track("u1", "X")
    assert "write_key is not set" in caplog.text
    assert kanal.flush() is True


def test_many_threads_share_one_client(sink: Sink, make_client: MakeClient) -> None:
    client = make_client(host=sink.url, flush_at=50)

    def work(n: int) -> None:
        for i in range(200):
            client.track(f"u{n}", "X", {"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.flush(timeout=20)
    events = sink.wait_for(1600)
    assert len(events) == 1600
    assert len({e["messageId"] for e in events}) == 1600
    assert all(len(r["body"]["batch"]) <= 50 for r in sink.requests)
