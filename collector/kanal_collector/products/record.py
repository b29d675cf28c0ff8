"""One product record: read from a feed row, a JSON object or the admin API, checked.

Field names follow Google Merchant Center (`id`, `title`, `link`, `image_link`, `price`
as "15.00 USD", `sale_price`, `availability`, `brand`, `product_type`,
`google_product_category`, `item_group_id`) and Kanal's own (`name`, `url`,
`image_url`, `currency`, `prices`, `categories`, `parent_id`, `stock`, `attributes`).
Any other field is kept as a custom attribute.

Money means what it says: a price is a finite number of at least 0 ("NaN", "inf" and
"-3" are refused), in one currency; a product has one price per currency and a default
currency (its first price's). Nothing is ever converted.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from .errors import InvalidProduct
from .settings import currency_code as _currency_code

AVAILABILITY = ("in_stock", "out_of_stock", "preorder", "backorder")
_AVAILABILITY_ALIASES = {
    "in stock": "in_stock", "instock": "in_stock", "available": "in_stock",
    "out of stock": "out_of_stock", "outofstock": "out_of_stock", "sold out": "out_of_stock",
    "soldout": "out_of_stock", "discontinued": "out_of_stock",
    "pre-order": "preorder", "pre order": "preorder", "back order": "backorder",
    "available for order": "in_stock",  # Merchant Center's retired value
}
MAX_ID = 200
MAX_TEXT = 2000
MAX_ATTRIBUTES = 100
# Field aliases: Merchant Center names (also with the `g:` prefix) → Kanal's.
_ALIASES = {
    "id": "id", "product_id": "id",
    "sku": "sku",
    "name": "name", "title": "name",
    "url": "url", "link": "url",
    "image_url": "image_url", "image_link": "image_url", "image": "image_url",
    "price": "price", "sale_price": "sale_price", "currency": "currency",
    "prices": "prices",
    "availability": "availability", "stock": "stock", "quantity": "stock",
    "inventory": "stock",
    "brand": "brand",
    "categories": "categories", "category": "categories", "product_type": "categories",
    "google_product_category": "google_product_category",
    "parent_id": "parent_id", "item_group_id": "parent_id",
    "attributes": "attributes",
}
# The admin API's own answer (GET /api/products/ID) may be sent back changed: its
# camelCase names are read, its read-only fields ignored.
_ALIASES.update({"imageurl": "image_url", "saleprice": "sale_price", "parentid": "parent_id"})
_READ_ONLY = frozenset({"instock", "source", "createdat", "updatedat", "deletedat",
                        "history", "in_stock", "created_at", "updated_at", "deleted_at"})
_PRICE_COLUMN = re.compile(r"^(sale_price|price)[_.]([A-Za-z]{3})$")
_AMOUNT = re.compile(r"^[-+]?[0-9][0-9.,']*$")
_CODE = re.compile(r"^[A-Za-z]{3}$")


def parse_money(value: Any, field: str) -> tuple[float, str | None]:
    """(amount, currency or None) of 12, 12.5, "12.50", "12,50", "15.00 USD", "USD 15".

    Refuses NaN, infinities, negative amounts and anything else that isn't a price.
    """
    if isinstance(value, bool):
        raise InvalidProduct(f"{field}: {value!r} is not a price")
    if isinstance(value, int | float):
        amount, currency = float(value), None
    elif isinstance(value, str):
        amount, currency = _money_text(value, field)
    else:
        raise InvalidProduct(f"{field}: {type(value).__name__} is not a price")
    if not math.isfinite(amount):
        raise InvalidProduct(f"{field}: {value!r} is not a price (not a finite number)")
    if amount < 0:
        raise InvalidProduct(f"{field}: a price can't be negative ({value!r})")
    return round(amount, 6), currency


def currency_code(value: Any, where: str) -> str:
    """A three-letter currency code (upper-cased), or InvalidProduct naming `where`."""
    try:
        return _currency_code(value, where)
    except ValueError as exc:
        raise InvalidProduct(str(exc)) from None


def _money_text(value: str, field: str) -> tuple[float, str | None]:
    parts = value.split()
    code: str | None = None
    if len(parts) == 2 and _CODE.match(parts[1]):
        text, code = parts
    elif len(parts) == 2 and _CODE.match(parts[0]):
        code, text = parts
    elif len(parts) == 1:
        text = parts[0]
    else:
        text = ""
    if not _AMOUNT.match(text):  # also refuses "NaN", "inf", "1e309"
        raise InvalidProduct(f"{field}: {value[:40]!r} is not a price like 15.00 or "
                             "15.00 USD")
    text = text.replace("'", "")
    if text.count(",") == 1 and "." not in text:  # a decimal comma: 12,50
        text = text.replace(",", ".")
    elif "," in text and "." in text:  # thousands separators: 1,299.00 or 1.299,00
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    try:
        amount = float(text)
    except ValueError:
        raise InvalidProduct(f"{field}: {value[:40]!r} is not a price like 15.00 or "
                             "15.00 USD") from None
    return amount, currency_code(code, field) if code else None


def _text(value: Any, field: str, *, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise InvalidProduct(f"{field}: a text, not {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise InvalidProduct(f"{field}: longer than {limit} characters")
    return text or None


def _url(value: Any, field: str) -> str | None:
    text = _text(value, field)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or \
            any(c in text for c in "\r\n\t <>\"'"):
        raise InvalidProduct(f"{field}: an http:// or https:// URL, not {text[:60]!r}")
    return text


def _availability(value: Any, stock: int | None) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "out_of_stock" if stock is not None and stock <= 0 else "in_stock"
    if isinstance(value, bool):
        return "in_stock" if value else "out_of_stock"
    text = str(value).strip().lower()
    text = _AVAILABILITY_ALIASES.get(text, text.replace(" ", "_"))
    # schema.org values: https://schema.org/InStock
    text = _AVAILABILITY_ALIASES.get(text.rsplit("/", 1)[-1].lower(), text)
    if text not in AVAILABILITY:
        raise InvalidProduct(f"availability: one of {', '.join(AVAILABILITY)}, "
                             f"not {value!r}")
    return text


def _stock(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise InvalidProduct(f"stock: a whole number, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or not number.is_integer():
        raise InvalidProduct(f"stock: a whole number, not {value!r}")
    return max(int(number), 0)


def _categories(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        text = _text(item, "categories", limit=500)
        if text:
            path = " > ".join(p.strip() for p in text.split(">") if p.strip())
            if path and path not in out:
                out.append(path)
    return out


def _attribute(value: Any, field: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value.strip() if isinstance(value, str) else value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidProduct(f"attributes.{field}: {value!r} is not a number")
        return value
    if isinstance(value, list | dict):
        encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if len(encoded) > MAX_TEXT * 4:
            raise InvalidProduct(f"attributes.{field}: too large")
        return orjson.loads(encoded)
    raise InvalidProduct(f"attributes.{field}: unsupported value {type(value).__name__}")


def normalize(raw: Mapping[str, Any], *, default_currency: str | None) -> dict[str, Any]:
    """A checked product record from one row or JSON object; InvalidProduct if it can't
    be stored. Keys are matched without case and without a `g:` prefix."""
    fields: dict[str, Any] = {}
    extra_prices: dict[str, dict[str, Any]] = {}
    attributes: dict[str, Any] = {}
    for key, value in raw.items():
        label = str(key).strip()
        lowered = label.lower().removeprefix("g:")
        if (match := _PRICE_COLUMN.match(lowered)) is not None:
            kind, code = match.group(1), match.group(2).upper()
            if value not in (None, ""):
                extra_prices.setdefault(code, {})[kind] = value
            continue
        if lowered in _READ_ONLY:
            continue
        target = _ALIASES.get(lowered)
        if target is None:
            if value not in (None, ""):
                attributes[label.removeprefix("g:")] = value
            continue
        if target == "categories" and "categories" in fields:
            fields["categories"] = [*_as_list(fields["categories"]), *_as_list(value)]
            continue
        if target in fields and fields[target] not in (None, ""):
            continue  # the first of two aliases wins (id over product_id, …)
        fields[target] = value

    pid = _text(fields.get("id"), "id", limit=MAX_ID)
    if not pid:
        raise InvalidProduct("id: required")
    name = _text(fields.get("name"), "name")
    if not name:
        raise InvalidProduct("name (or title): required")
    prices = _prices(fields, extra_prices, default_currency)
    currency = next(iter(prices)) if prices else (default_currency or "")
    if not currency:
        raise InvalidProduct("currency: give the price a currency (15.00 USD, a currency "
                             "column) or set [products] default_currency")
    price, sale = prices.get(currency, (None, None))
    stock = _stock(fields.get("stock"))
    availability = _availability(fields.get("availability"), stock)
    categories = _categories(fields.get("categories"))
    google = _text(fields.get("google_product_category"), "google_product_category")
    if google:
        attributes["google_product_category"] = google
        if not categories and not google.isdigit():
            categories = _categories(google)
    extra = fields.get("attributes")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise InvalidProduct("attributes: a mapping of names to values")
        attributes.update({str(k): v for k, v in extra.items()})
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidProduct(f"attributes: more than {MAX_ATTRIBUTES}")
    return {
        "id": pid,
        "sku": _text(fields.get("sku"), "sku", limit=MAX_ID),
        "name": name,
        "url": _url(fields.get("url"), "url"),
        "image_url": _url(fields.get("image_url"), "image_url"),
        "currency": currency,
        "price": price,
        "sale_price": sale,
        "prices": prices,
        "availability": availability,
        "in_stock": availability != "out_of_stock",
        "stock": stock,
        "brand": _text(fields.get("brand"), "brand", limit=200),
        "categories": categories,
        "category": categories[0] if categories else None,
        "parent_id": _text(fields.get("parent_id"), "parent_id", limit=MAX_ID),
        "attributes": {k: _attribute(v, k) for k, v in sorted(attributes.items())},
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _prices(fields: Mapping[str, Any], extra: Mapping[str, Mapping[str, Any]],
            default_currency: str | None) -> dict[str, tuple[float, float | None]]:
    """{currency: (price, sale_price)}, the product's default currency first."""
    out: dict[str, tuple[float, float | None]] = {}
    named = fields.get("currency")
    currency = currency_code(named, "currency") if named not in (None, "") else None
    if fields.get("price") not in (None, ""):
        amount, code = parse_money(fields["price"], "price")
        if code and currency and code != currency:
            raise InvalidProduct(f"price: in {code} but currency says {currency}")
        code = code or currency or default_currency
        if code is None:
            raise InvalidProduct("currency: give the price a currency (15.00 USD, a currency "
                                 "column) or set [products] default_currency")
        sale = None
        if fields.get("sale_price") not in (None, ""):
            sale, sale_code = parse_money(fields["sale_price"], "sale_price")
            if sale_code and sale_code != code:
                raise InvalidProduct(f"sale_price: in {sale_code} but price is in {code}")
        out[code] = (amount, sale)
    elif fields.get("sale_price") not in (None, ""):
        raise InvalidProduct("sale_price: needs a price")
    listed = fields.get("prices")
    if listed is not None:
        if not isinstance(listed, Mapping):
            raise InvalidProduct("prices: a mapping of currency to price, e.g. "
                                 '{"EUR": 10, "SEK": 115}')
        for code, value in listed.items():
            where = f"prices.{code}"
            cur = currency_code(code, where)
            if isinstance(value, Mapping):
                amount, _ = parse_money(value.get("price"), f"{where}.price")
                sale_raw = value.get("sale_price", value.get("salePrice"))
                sale = parse_money(sale_raw, f"{where}.sale_price")[0] \
                    if sale_raw not in (None, "") else None
            else:
                amount, sale = parse_money(value, where)[0], None
            if cur in out and out[cur] != (amount, sale):
                raise InvalidProduct(f"{where}: differs from price")
            out.setdefault(cur, (amount, sale))
    for code, values in extra.items():
        where = f"price_{code.lower()}"
        if "price" not in values:
            raise InvalidProduct(f"sale_{where}: needs {where}")
        amount, named_code = parse_money(values["price"], where)
        if named_code and named_code != code:
            raise InvalidProduct(f"{where}: in {named_code}")
        sale = parse_money(values["sale_price"], f"sale_{where}")[0] \
            if "sale_price" in values else None
        if code in out and out[code] != (amount, sale):
            raise InvalidProduct(f"{where}: differs from price")
        out.setdefault(code, (amount, sale))
    for code, (amount, sale) in out.items():
        if sale is not None and sale > amount:
            raise InvalidProduct(f"sale_price: {sale:g} {code} is above the price "
                                 f"{amount:g} {code}")
    return out


def effective_price(price: float | None, sale: float | None) -> float | None:
    """What the product costs now: the sale price when there is one."""
    if sale is not None and (price is None or sale < price):
        return sale
    return price


def record_hash(record: Mapping[str, Any]) -> str:
    """A fingerprint of a record's content (an unchanged re-import writes nothing)."""
    content = dict(record)
    content["prices"] = sorted([c, p, s] for c, (p, s) in record["prices"].items())
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
