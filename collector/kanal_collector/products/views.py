"""Products as the admin API, the CLI and templates show them.

A person sees prices in their `currency` trait when the product has a price in that
currency, else in the product's default currency. Nothing is ever converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..store.products import HistoryRow
from .record import effective_price


def price_in(row: Mapping[str, Any], wanted: str | None) -> tuple[str, float | None,
                                                                  float | None]:
    """(currency, price, sale_price) of a stored product for a person wanting `wanted`."""
    prices = row.get("prices") or {}
    code = wanted.strip().upper() if isinstance(wanted, str) else None
    if code and code in prices:
        price, sale = prices[code]
        return code, price, sale
    return row["currency"], row.get("price"), row.get("sale_price")


def money_text(amount: float | None, currency: str) -> str:
    """12.5, "EUR" → "12.50 EUR" (empty for no amount)."""
    return "" if amount is None else f"{amount:,.2f} {currency}"


def product_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored product as the admin API and `--json` show it."""
    return {
        "id": row["id"], "sku": row.get("sku"), "name": row["name"], "url": row.get("url"),
        "imageUrl": row.get("image_url"), "currency": row["currency"],
        "price": row.get("price"), "salePrice": row.get("sale_price"),
        "prices": {c: {"price": p, "salePrice": s}
                   for c, (p, s) in sorted((row.get("prices") or {}).items())},
        "availability": row["availability"], "inStock": bool(row["in_stock"]),
        "stock": row.get("stock"), "brand": row.get("brand"),
        "category": row.get("category"), "categories": list(row.get("categories") or []),
        "parentId": row.get("parent_id"), "attributes": dict(row.get("attributes") or {}),
        "source": row.get("source"), "createdAt": row.get("created_at"),
        "updatedAt": row.get("updated_at"), "deletedAt": row.get("deleted_at"),
    }


def history_json(row: HistoryRow) -> dict[str, Any]:
    """One history row as the admin API shows it."""
    return {"id": row.id, "at": row.at, "what": row.what, "currency": row.currency,
            "oldPrice": row.old_price, "newPrice": row.new_price,
            "oldAvailability": row.old_availability,
            "newAvailability": row.new_availability, "source": row.source}


def template_product(row: Mapping[str, Any], *, currency: str | None,
                     kind: str | None = None) -> dict[str, Any]:
    """What a template gets for a product: name, url, image, price in the person's
    currency (`price` is what it costs now: the sale price when there is one;
    `regular_price` the price before it), and `kind`, the recommendation that chose it."""
    code, price, sale = price_in(row, currency)
    now = effective_price(price, sale)
    on_sale = sale is not None and price is not None and sale < price
    return {
        "id": row["id"], "sku": row.get("sku"), "name": row["name"], "url": row.get("url"),
        "image_url": row.get("image_url"), "image": row.get("image_url"),
        "currency": code, "price": now, "regular_price": price, "on_sale": on_sale,
        "price_text": money_text(now, code),
        "regular_price_text": money_text(price, code) if on_sale else "",
        "brand": row.get("brand"), "category": row.get("category"),
        "categories": list(row.get("categories") or []),
        "availability": row["availability"], "in_stock": bool(row["in_stock"]),
        "attributes": dict(row.get("attributes") or {}), "kind": kind,
    }
