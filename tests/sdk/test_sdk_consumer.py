"""The consumer and transport, driven step by step: batching, retries, failures.

The collector's failures are injected with `responses`; nothing sleeps (the transport's
sleep is a recorder) and no consumer thread is started.
"""

from __future__ import annotations

import gzip
import json
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

import kanal
from kanal._consumer import Consumer, Item
from kanal._message import BATCH_PAYLOAD_BUDGET, DEFAULT_CONTEXT, rand128, time_ns
from kanal._transport import Transport, parse_retry_after

HOST = "http://collector.test"
URL = HOST + "/v1/batch"


class Harness:
    """A consumer with an injected sleep and a record of on_error calls."""

    def __init__(self, **options: Any) -> None:
        self.sleeps: list[float] = []
        self.errors: list[tuple[Exception, list[dict[str, Any]]]] = []
        self.queue: deque[Item] = deque()
        transport_options = {k: options.pop(k) for k in ("gzip", "max_retries")
                             if k in options}
        self.transport = Transport("wk", HOST, sleep=self.sleep, random=lambda: 0.5,
                                   **transport_options)
        self.consumer = Consumer(self.queue, self.transport, on_error=self.on_error,
                                 **options)

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        return True

    def on_error(self, exc: Exception, batch: list[dict[str, Any]]) -> None:
        self.errors.append((exc, batch))

    def put(self, n: int, **properties: Any) -> None:
        for i in range(n):
            self.queue.append({
                "type": "track", "event": "E", "userId": "u", "context": DEFAULT_CONTEXT,
                "properties": {"i": i, **properties}, "timestamp": time_ns(),
                "messageId": rand128(),
            })


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def bodies(rsps: responses.RequestsMock) -> list[dict[str, Any]]:
    out = []
    for call in rsps.calls:
        raw = call.request.body
        assert isinstance(raw, bytes)
        if call.request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        out.append(json.loads(raw))
    return out


def test_next_batches_by_count() -> None:
    h = Harness(flush_at=10)
    h.put(25)
    assert [len(h.consumer.next()) for _ in range(4)] == [10, 10, 5, 0]


def test_next_batches_by_bytes_and_carries_the_rest() -> None:
    h = Harness(flush_at=2500)
    h.put(40, blob="x" * 30_000)  # ~30 KB each: 15 fit under the batch budget
    sizes = []
    while batch := h.consumer.next():
        assert batch.size <= BATCH_PAYLOAD_BUDGET
        sizes.append(len(batch))
    assert sum(sizes) == 40
    assert sizes[0] == 15


def test_next_drops_oversize_events_with_on_error() -> None:
    h = Harness()
    h.put(1, blob="x" * 33_000)
    h.put(2)
    batch = h.consumer.next()
    assert len(batch) == 2
    (exc, events), = h.errors
    assert isinstance(exc, kanal.MessageTooLargeError)
    assert events[0]["properties"]["blob"].startswith("xxx")
    assert h.consumer.stats.dropped == 1


def test_upload_posts_the_batch_envelope(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, json={"success": True})
    h = Harness()
    h.put(3)
    assert h.consumer.upload()
    (body,) = bodies(rsps)
    assert set(body) == {"batch", "sentAt"}
    assert [e["properties"]["i"] for e in body["batch"]] == [0, 1, 2]
    assert rsps.calls[0].request.headers["Authorization"] == "Basic d2s6"
    assert h.consumer.stats.sent == 3


def test_gzip_body(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, json={"success": True})
    h = Harness(gzip=True)
    h.put(2)
    assert h.consumer.upload()
    request = rsps.calls[0].request
    assert request.headers["Content-Encoding"] == "gzip"
    assert isinstance(request.body, bytes) and request.body[:2] == b"\x1f\x8b"
    assert len(bodies(rsps)[0]["batch"]) == 2


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_retries_retryable_statuses_with_backoff(
    rsps: responses.RequestsMock, status: int,
) -> None:
    for _ in range(3):
        rsps.post(URL, status=status, json={"code": "x", "message": "try later"})
    rsps.post(URL, json={"success": True})
    h = Harness(max_retries=5)
    h.put(1)
    assert h.consumer.upload()
    assert len(rsps.calls) == 4
    # random() == 0.5: three quarters of 0.5 s, 1 s, 2 s.
    assert h.sleeps == [0.375, 0.75, 1.5]
    assert h.errors == []


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = Transport("k", HOST, random=lambda: 0.0)
    high = Transport("k", HOST, random=lambda: 0.999999)
    for attempt in range(12):
        step = min(30.0, 0.5 * 2**attempt)
        assert low.backoff(attempt) == pytest.approx(step / 2)
        assert step / 2 <= high.backoff(attempt) <= step
    assert high.backoff(20) <= 30.0


def test_retries_network_errors(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, body=requests.ConnectionError("refused"))
    rsps.post(URL, body=requests.Timeout("slow"))
    rsps.post(URL, json={"success": True})
    h = Harness()
    h.put(1)
    assert h.consumer.upload()
    assert len(h.sleeps) == 2


def test_retry_after_is_honoured(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, status=429, headers={"Retry-After": "7"},
              json={"code": "rate_limited", "message": "slow down"})
    rsps.post(URL, json={"success": True})
    h = Harness()
    h.put(1)
    assert h.consumer.upload()
    assert h.sleeps == [7.0]


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert Transport("k", HOST).backoff(0, retry_after=10_000) == 300.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_4xx_give_up_at_once(rsps: responses.RequestsMock, status: int) -> None:
    rsps.post(URL, status=status, json={"code": "invalid", "message": "bad batch"})
    h = Harness()
    h.put(2)
    assert not h.consumer.upload()
    assert len(rsps.calls) == 1
    assert h.sleeps == []
    (exc, batch), = h.errors
    assert isinstance(exc, kanal.APIError)
    assert (exc.status, exc.code, exc.message) == (status, "invalid", "bad batch")
    assert not exc.retryable
    assert len(batch) == 2 and batch[0]["type"] == "track"
    assert h.consumer.stats.dropped == 2


def test_gives_up_after_max_retries(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, status=503, json={"code": "unavailable", "message": "storage"})
    h = Harness(max_retries=3)
    h.put(1)
    assert not h.consumer.upload()
    assert len(rsps.calls) == 4
    assert len(h.sleeps) == 3
    (exc, _), = h.errors
    assert isinstance(exc, kanal.APIError) and exc.status == 503


def test_error_body_that_is_not_json(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, status=400, body="<html>proxy says no</html>")
    h = Harness()
    h.put(1)
    assert not h.consumer.upload()
    exc = h.errors[0][0]
    assert isinstance(exc, kanal.APIError) and exc.code == "unknown"


def test_broken_on_error_does_not_break_the_consumer(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, status=400, json={"code": "invalid", "message": "no"})
    h = Harness()

    def broken(exc: Exception, batch: list[dict[str, Any]]) -> None:
        raise ValueError("oops")

    h.consumer.on_error = broken
    h.put(250)
    h.consumer.flush_at = 100
    h.consumer.drain()  # three failing batches, each calling the broken callback
    assert len(rsps.calls) == 3
    assert not h.consumer.pending()
    assert h.consumer.stats.dropped == 250


def test_shutdown_cuts_retry_waits_short(rsps: responses.RequestsMock) -> None:
    rsps.post(URL, status=503, json={"code": "x", "message": "y"})
    queue: deque[Item] = deque()
    transport = Transport("k", HOST)
    consumer = Consumer(queue, transport)
    transport.sleep = consumer.interruptible_sleep
    consumer.aborted.set()
    h = Harness()
    h.put(1)
    queue.extend(h.queue)
    assert not consumer.upload()
    assert len(rsps.calls) == 1
