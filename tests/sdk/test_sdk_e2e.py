"""End to end: the SDK against a real `kanal serve` process on loopback."""

from __future__ import annotations

from typing import Any

import pytest

import kanal


@pytest.mark.slow
def test_identify_then_order_completed_arrive(collector: Any) -> None:
    errors: list[Exception] = []
    client = kanal.Client(collector.secret_key, host=collector.url,
                          on_error=lambda exc, batch: errors.append(exc))
    try:
        client.identify("user-42", {"email": "ada@example.com", "name": "Ada"})
        client.order_completed(
            "user-42", order_id="o-1001", total=64.0, revenue=59.0, currency="EUR",
            products=[{"product_id": "sku-1", "price": 29.5, "quantity": 2}],
        )
        assert client.flush(timeout=15)
    finally:
        client.shutdown()
    assert errors == []
    assert client.sent == 2
    events = collector.wait_for_events(2)
    assert [e["type"] for e in events] == ["identify", "track"]
    identify, order = events
    assert identify["user_id"] == "user-42"
    assert identify["body"]["traits"]["email"] == "ada@example.com"
    assert order["event"] == "Order Completed"
    assert order["user_id"] == "user-42"
    assert order["origin"] == "server"
    assert order["key_kind"] == "secret"
    properties = order["body"]["properties"]
    assert properties["order_id"] == "o-1001"
    assert properties["total"] == 64.0 and properties["revenue"] == 59.0
    assert properties["currency"] == "EUR"
    assert properties["products"] == [{"product_id": "sku-1", "price": 29.5, "quantity": 2}]
    assert order["body"]["context"]["library"]["name"] == "kanal-python"


@pytest.mark.slow
def test_resent_events_are_deduplicated_by_message_id(collector: Any) -> None:
    with kanal.Client(collector.secret_key, host=collector.url, sync_mode=True) as client:
        for _ in range(2):  # e.g. a spool resend after a crash between 200 and delete
            client.track("user-1", "Signed Up", message_id="signup-user-1")
        client.track("user-1", "Logged In")
    events = collector.wait_for_events(2)
    assert [e["event"] for e in events] == ["Signed Up", "Logged In"]
