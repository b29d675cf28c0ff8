"""Checks and properties for the Segment e-commerce v2 events a backend reports.

Money must be a finite, non-negative number (int, float or Decimal; never a string or a
bool), currencies are ISO 4217 codes, and each product needs `product_id`, `price` and
`quantity`. Everything is checked before anything is queued, and errors name the argument
(`products[1]['quantity']`) and the call they came from.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Mapping
from typing import Any

from ._message import check_id, copy_dict

ORDER_COMPLETED = "Order Completed"
ORDER_UPDATED = "Order Updated"
ORDER_REFUNDED = "Order Refunded"
ORDER_CANCELLED = "Order Cancelled"
CHECKOUT_STARTED = "Checkout Started"
PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"

_MONEY_TYPES = (int, float, decimal.Decimal)


def money(value: object, name: str, where: str) -> float | int:
    """A finite, non-negative amount."""
    if isinstance(value, bool) or not isinstance(value, _MONEY_TYPES):
        raise TypeError(
            f"{where}: {name} must be a number (int, float or Decimal), "
            f"not {type(value).__name__} {value!r}"
        )
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"{where}: {name} must be finite, not {value}")
        amount: float | int = float(value)
    else:
        amount = value
    if isinstance(amount, float) and not math.isfinite(amount):
        raise ValueError(f"{where}: {name} must be finite, not {amount}")
    if amount < 0:
        raise ValueError(f"{where}: {name} must not be negative, got {amount}")
    return amount


def currency(value: object, where: str, name: str = "currency") -> str:
    """An ISO 4217 code such as "EUR" (lower case is accepted and upper-cased)."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str such as 'EUR', "
                        f"not {type(value).__name__}")
    code = value.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValueError(f"{where}: {name} must be a 3-letter ISO 4217 code, got {value!r}")
    return code


def quantity(value: object, name: str, where: str) -> int:
    """A whole number of items, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int, not {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{where}: {name} must be at least 1, got {value}")
    return int(value)


def product(value: object, name: str, where: str) -> dict[str, Any]:
    """One product: product_id, price and quantity required, other keys kept."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: {name} must be a dict, not {type(value).__name__}")
    item = copy_dict(value, name, where)
    for key in ("product_id", "price", "quantity"):
        if item.get(key) is None:
            raise ValueError(f"{where}: {name}[{key!r}] is required")
    item["product_id"] = check_id(item["product_id"], f"{name}['product_id']", where)
    item["price"] = money(value["price"], f"{name}['price']", where)
    item["quantity"] = quantity(value["quantity"], f"{name}['quantity']", where)
    return item


def products(value: object, where: str) -> list[dict[str, Any]]:
    """A non-empty list of products."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{where}: products must be a list of dicts, "
                        f"not {type(value).__name__}")
    if not value:
        raise ValueError(f"{where}: products must not be empty")
    return [product(p, f"products[{i}]", where) for i, p in enumerate(value)]


def order_properties(
    where: str,
    *,
    properties: Mapping[str, Any] | None,
    amounts: dict[str, object],
    currency_code: object,
    order_id: object = None,
    product_list: object = None,
    need_order_id: bool = False,
    need_products: bool = False,
    need_amount: tuple[str, ...] = (),
    texts: dict[str, object] | None = None,
    ids: dict[str, object] | None = None,
) -> dict[str, Any]:
    """The properties of an order or checkout event, checked.

    `need_amount` names amounts of which at least one is required; a currency is required
    whenever an amount or a product (with its price) is given. `ids` (e.g. cart_id) are
    strings or ints, sent as strings.
    """
    props = copy_dict(properties, "properties", where) if properties is not None else {}
    for name, value in (ids or {}).items():
        if value is not None:
            props[name] = check_id(value, name, where)
    if order_id is not None:
        props["order_id"] = check_id(order_id, "order_id", where)
    elif need_order_id:
        raise ValueError(f"{where}: order_id is required")
    given = {k: v for k, v in amounts.items() if v is not None}
    if need_amount and not any(k in given for k in need_amount):
        raise ValueError(f"{where}: {' or '.join(need_amount)} is required")
    for name, amount in given.items():
        props[name] = money(amount, name, where)
    if product_list is not None:
        props["products"] = products(product_list, where)
    elif need_products:
        raise ValueError(f"{where}: products is required")
    if currency_code is not None:
        props["currency"] = currency(currency_code, where)
    elif given or product_list is not None:
        raise ValueError(f"{where}: currency is required with amounts or products")
    for name, text in (texts or {}).items():
        if text is not None:
            if not isinstance(text, str):
                raise TypeError(f"{where}: {name} must be a str, not {type(text).__name__}")
            props[name] = text
    return props


def product_properties(
    where: str,
    *,
    properties: Mapping[str, Any] | None,
    product_id: object,
    price: object,
    quantity_: object,
    currency_code: object,
    texts: dict[str, object],
) -> dict[str, Any]:
    """The properties of Product Added / Product Removed, checked."""
    props = copy_dict(properties, "properties", where) if properties is not None else {}
    if product_id is None:
        raise ValueError(f"{where}: product_id is required")
    props["product_id"] = check_id(product_id, "product_id", where)
    if price is None:
        raise ValueError(f"{where}: price is required")
    props["price"] = money(price, "price", where)
    props["quantity"] = quantity(quantity_, "quantity", where)
    if currency_code is not None:
        props["currency"] = currency(currency_code, where)
    for name, text in texts.items():
        if text is not None:
            if not isinstance(text, (str, int)) or isinstance(text, bool):
                raise TypeError(f"{where}: {name} must be a str, not {type(text).__name__}")
            props[name] = str(text)
    return props
