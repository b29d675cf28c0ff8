"""E-commerce helpers: the Segment v2 events they send and the errors they raise."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from _sdk_sink import Sink

import kanal

MakeClient = Callable[..., kanal.Client]
PRODUCTS = [{"product_id": "sku-1", "price": 29.5, "quantity": 2, "name": "Mug"}]


def test_helpers_send_segment_ecommerce_events(sink: Sink, make_client: MakeClient) -> None:
    client = make_client(host=sink.url)
    client.product_added("u1", product_id="sku-1", price=Decimal("29.50"), quantity=2,
                         currency="eur", cart_id="c1", name="Mug")
    client.product_removed("u1", product_id="sku-1", price=29.5, currency="EUR")
    client.checkout_started("u1", currency="EUR", products=PRODUCTS, value=59, cart_id="c1")
    client.order_completed(
        "u1", order_id="o-1001", total=Decimal("64.00"), revenue=59, shipping=5, tax=0,
        currency="EUR", products=PRODUCTS, coupon="SPRING", properties={"channel": "web"},
        cart_id="c1",
    )
    client.order_updated("u1", order_id="o-1001", total=60, currency="EUR")
    client.order_refunded("u1", order_id="o-1001", total=29.5, currency="EUR",
                          products=[{"product_id": "sku-1", "price": 29.5, "quantity": 1}])
    client.order_cancelled(None, anonymous_id="a1", order_id=1002)
    assert client.flush(timeout=10)
    events = sink.wait_for(7)
    assert [e["event"] for e in events] == [
        "Product Added", "Product Removed", "Checkout Started", "Order Completed",
        "Order Updated", "Order Refunded", "Order Cancelled",
    ]
    added = events[0]["properties"]
    assert added == {"product_id": "sku-1", "price": 29.5, "quantity": 2, "currency": "EUR",
                     "cart_id": "c1", "name": "Mug"}
    assert events[1]["properties"]["quantity"] == 1
    completed = events[3]
    assert completed["userId"] == "u1" and completed["type"] == "track"
    assert completed["properties"] == {
        "channel": "web", "cart_id": "c1", "order_id": "o-1001", "total": 64.0,
        "revenue": 59, "shipping": 5, "tax": 0, "products": PRODUCTS, "currency": "EUR",
        "coupon": "SPRING",
    }
    assert events[2]["properties"]["cart_id"] == "c1"
    assert events[6]["properties"] == {"order_id": "1002"}
    assert events[6]["anonymousId"] == "a1"


def good(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"order_id": "o1", "total": 10, "currency": "EUR",
                            "products": [{"product_id": "p", "price": 5, "quantity": 2}]}
    args.update(changes)
    return {k: v for k, v in args.items() if v is not ...}


def product(**changes: Any) -> dict[str, Any]:
    item = {"product_id": "p", "price": 5, "quantity": 2}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not ...}


@pytest.mark.parametrize(("args", "error", "message"), [
    (good(total="10.00"), TypeError, "order_completed(): total must be a number"),
    (good(total=True), TypeError, "total must be a number"),
    (good(total=-1), ValueError, "total must not be negative"),
    (good(total=float("inf")), ValueError, "total must be finite"),
    (good(total=Decimal("NaN")), ValueError, "total must be finite"),
    (good(total=None), ValueError, "order_completed(): total or revenue is required"),
    (good(revenue="5"), TypeError, "revenue must be a number"),
    (good(tax=[1]), TypeError, "tax must be a number"),
    (good(currency=None), ValueError, "currency is required"),
    (good(currency=978), TypeError, "currency must be a str"),
    (good(currency="EURO"), ValueError, "currency must be a 3-letter ISO 4217 code"),
    (good(order_id=None), ValueError, "order_id is required"),
    (good(order_id=1.5), TypeError, "order_id must be a str or int"),
    (good(products=None), ValueError, "products is required"),
    (good(products=[]), ValueError, "products must not be empty"),
    (good(products={"product_id": "p"}), TypeError, "products must be a list of dicts"),
    (good(products=["p"]), TypeError, "products[0] must be a dict"),
    (good(products=[product(product_id=...)]), ValueError, "products[0]['product_id'] is req"),
    (good(products=[product(), product(price=...)]), ValueError,
     "products[1]['price'] is required"),
    (good(products=[product(price="5")]), TypeError, "products[0]['price'] must be a number"),
    (good(products=[product(quantity=0)]), ValueError,
     "products[0]['quantity'] must be at least 1"),
    (good(products=[product(quantity=1.0)]), TypeError,
     "products[0]['quantity'] must be an int"),
    (good(coupon=5), TypeError, "coupon must be a str"),
    (good(properties=[1]), TypeError, "properties must be a dict"),
])
def test_order_completed_checks_its_arguments(
    make_client: MakeClient, args: dict[str, Any], error: type, message: str,
) -> None:
    client = make_client(send=False)
    with pytest.raises(error, match=re.escape(message)):
        client.order_completed("u1", **args)
    assert len(client._queue) == 0


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda c: c.product_added("u1", product_id=None, price=1), ValueError,
     "product_added(): product_id is required"),
    (lambda c: c.product_added("u1", product_id="p", price="1"), TypeError,
     "product_added(): price must be a number"),
    (lambda c: c.product_removed("u1", product_id="p", price=1, quantity=-2), ValueError,
     "product_removed(): quantity must be at least 1"),
    (lambda c: c.product_added("u1", product_id="p", price=1, currency="$"), ValueError,
     "currency must be a 3-letter"),
    (lambda c: c.checkout_started("u1", currency="EUR", products=[]), ValueError,
     "checkout_started(): products must not be empty"),
    (lambda c: c.order_refunded("u1", order_id="o", total=5), ValueError,
     "order_refunded(): currency is required with amounts or products"),
    (lambda c: c.order_cancelled("u1", order_id=None), ValueError,
     "order_cancelled(): order_id is required"),
    (lambda c: c.order_completed(order_id="o", total=1, currency="EUR",
                                 products=[product()]), ValueError,
     "order_completed(): user_id or anonymous_id is required"),
])
def test_other_helpers_check_their_arguments(
    make_client: MakeClient, call: Callable[[kanal.Client], None], error: type, message: str,
) -> None:
    client = make_client(send=False)
    with pytest.raises(error, match=re.escape(message)):
        call(client)


def test_module_level_helpers_raise_in_the_caller(sink: Sink) -> None:
    kanal.write_key = "k"
    kanal.host = sink.url
    with pytest.raises(TypeError, match=re.escape("order_completed(): total")):
        kanal.order_completed("u1", **good(total="9.99"))
    kanal.order_completed("u1", **good())
    assert kanal.flush(timeout=10)
    assert [e["event"] for e in sink.wait_for(1)] == ["Order Completed"]
