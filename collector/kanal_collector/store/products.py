"""The product catalogue: products, prices per currency, and price and stock history.

Written only by feeds, `kanal products import` and the admin API (products/importer.py):
events from browsers never create or change a product. What people do with products,
the recommendation lists and their attribution are in store/product_activity.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .connection import Connection

_COLUMNS = ("id", "sku", "name", "url", "image_url", "currency", "price", "sale_price",
            "availability", "in_stock", "stock", "brand", "category", "categories",
            "parent_id", "attributes", "source", "hash", "created_at", "updated_at",
            "deleted_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM products"
_JSON_COLUMNS = ("categories", "attributes")


@dataclass(frozen=True)
class HistoryRow:
    """One change of a product: created, price, availability, deleted or restored."""

    product_id: str
    at: int
    what: str
    currency: str | None = None
    old_price: float | None = None
    new_price: float | None = None
    old_availability: str | None = None
    new_availability: str | None = None
    source: str | None = None
    id: int | None = None


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _row(values: Sequence[Any]) -> dict[str, Any]:
    row = dict(zip(_COLUMNS, values, strict=True))
    for name in _JSON_COLUMNS:
        row[name] = orjson.loads(row[name])
    row["in_stock"] = bool(row["in_stock"])
    return row


def load_products(conn: Connection, ids: Iterable[str], *,
                  with_prices: bool = True) -> dict[str, dict[str, Any]]:
    """Products by id (deleted ones too, with `deleted_at` set), each with its `prices`:
    {currency: (price, sale_price)}."""
    wanted = sorted(set(ids))
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(wanted):
        marks = ",".join("?" * len(chunk))
        for values in conn.execute(f"{_SELECT} WHERE id IN ({marks})", list(chunk)):
            row = _row(values)
            row["prices"] = {}
            out[row["id"]] = row
    if with_prices and out:
        for chunk in _chunks(sorted(out)):
            marks = ",".join("?" * len(chunk))
            for pid, currency, price, sale in conn.execute(
                    "SELECT product_id, currency, price, sale_price FROM product_prices "
                    f"WHERE product_id IN ({marks})", list(chunk)):
                out[pid]["prices"][currency] = (price, sale)
    return out


def ids_by_sku(conn: Connection, skus: Iterable[str]) -> dict[str, str]:
    """{sku: product id} of the products with these SKUs (the newest when several)."""
    wanted = sorted(set(skus))
    out: dict[str, str] = {}
    for chunk in _chunks(wanted):
        marks = ",".join("?" * len(chunk))
        for sku, pid in conn.execute(
                f"SELECT sku, id FROM products WHERE sku IN ({marks}) AND deleted_at IS NULL "
                "ORDER BY updated_at", list(chunk)):
            out[sku] = pid
    return out


def known_ids(conn: Connection, ids: Iterable[str]) -> set[str]:
    """Which of these ids name a product (deleted or not)."""
    wanted = sorted(set(ids))
    out: set[str] = set()
    for chunk in _chunks(wanted):
        marks = ",".join("?" * len(chunk))
        out.update(r[0] for r in conn.execute(
            f"SELECT id FROM products WHERE id IN ({marks})", list(chunk)))
    return out


def save_product(conn: Connection, record: Mapping[str, Any], *, source: str,
                 hash_: str, now: int) -> None:
    """Insert or replace a product (and its prices); a deleted one comes back."""
    values = {
        "id": record["id"], "sku": record.get("sku"), "name": record["name"],
        "url": record.get("url"), "image_url": record.get("image_url"),
        "currency": record["currency"], "price": record.get("price"),
        "sale_price": record.get("sale_price"), "availability": record["availability"],
        "in_stock": 1 if record["in_stock"] else 0, "stock": record.get("stock"),
        "brand": record.get("brand"), "category": record.get("category"),
        "categories": orjson.dumps(list(record.get("categories") or [])).decode(),
        "parent_id": record.get("parent_id"),
        "attributes": orjson.dumps(dict(record.get("attributes") or {})).decode(),
        "source": source, "hash": hash_, "created_at": now, "updated_at": now,
        "deleted_at": None,
    }
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS
                        if c not in ("id", "created_at"))
    conn.execute(
        f"INSERT INTO products ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_COLUMNS))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        [values[c] for c in _COLUMNS])
    conn.execute("DELETE FROM product_prices WHERE product_id = ?", (record["id"],))
    conn.executemany(
        "INSERT INTO product_prices (product_id, currency, price, sale_price) "
        "VALUES (?, ?, ?, ?)",
        [(record["id"], cur, price, sale)
         for cur, (price, sale) in sorted(dict(record.get("prices") or {}).items())])


def mark_deleted(conn: Connection, product_id: str, now: int) -> bool:
    """Delete a product (it is kept as a tombstone: a message naming it is skipped, not
    failed); False when it was unknown or already deleted."""
    return conn.execute(
        "UPDATE products SET deleted_at = ?, updated_at = ? "
        "WHERE id = ? AND deleted_at IS NULL", (now, now, product_id)).rowcount > 0


def live_ids_of_source(conn: Connection, source: str) -> set[str]:
    """Ids of the products (not deleted) last written by `source`."""
    return {r[0] for r in conn.execute(
        "SELECT id FROM products WHERE source = ? AND deleted_at IS NULL", (source,))}


def add_history(conn: Connection, rows: Sequence[HistoryRow]) -> None:
    """Append changes to the history (the signals worker reads it after its cursor)."""
    conn.executemany(
        "INSERT INTO product_history (product_id, at, what, currency, old_price, new_price, "
        "old_availability, new_availability, source) VALUES (?,?,?,?,?,?,?,?,?)",
        [(r.product_id, r.at, r.what, r.currency, r.old_price, r.new_price,
          r.old_availability, r.new_availability, r.source) for r in rows])


_HISTORY = ("SELECT id, product_id, at, what, currency, old_price, new_price, "
            "old_availability, new_availability, source FROM product_history")


def _history(values: Sequence[Any]) -> HistoryRow:
    return HistoryRow(id=values[0], product_id=values[1], at=values[2], what=values[3],
                      currency=values[4], old_price=values[5], new_price=values[6],
                      old_availability=values[7], new_availability=values[8],
                      source=values[9])


def history_after(conn: Connection, after: int, limit: int) -> list[HistoryRow]:
    """Up to `limit` history rows with an id above `after`, oldest first."""
    return [_history(v) for v in conn.execute(
        f"{_HISTORY} WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


def product_history(conn: Connection, product_id: str,
                    limit: int = 50) -> list[HistoryRow]:
    """A product's changes, newest first."""
    return [_history(v) for v in conn.execute(
        f"{_HISTORY} WHERE product_id = ? ORDER BY id DESC LIMIT ?", (product_id, limit))]


def list_products(conn: Connection, *, prefix: str | None = None, after: str = "",
                  limit: int = 50, include_deleted: bool = False) -> list[dict[str, Any]]:
    """Products in id order after `after`, optionally whose id or name starts with
    `prefix` (case-insensitive for the name)."""
    where = ["id > ?"]
    args: list[Any] = [after]
    if not include_deleted:
        where.append("deleted_at IS NULL")
    if prefix:
        where.append("(id LIKE ? ESCAPE '\\' OR lower(name) LIKE ? ESCAPE '\\')")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        args += [escaped + "%", escaped.lower() + "%"]
    rows = [_row(v) for v in conn.execute(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?", [*args, limit])]
    return rows


def count_products(conn: Connection) -> tuple[int, int]:
    """(live products, of which available)."""
    row = conn.execute("SELECT count(*), coalesce(sum(in_stock), 0) FROM products "
                       "WHERE deleted_at IS NULL").fetchone()
    return int(row[0]), int(row[1])


def catalogue_meta(conn: Connection) -> list[tuple[str, str | None, str | None]]:
    """(id, category, brand) of every live product (for "similar")."""
    return [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT id, category, brand FROM products WHERE deleted_at IS NULL ORDER BY id")]


# -- feeds ------------------------------------------------------------------------------

def feed_state(conn: Connection, name: str) -> dict[str, Any] | None:
    """The stored state of a scheduled feed (None before its first fetch)."""
    keys = ("name", "url", "next_at", "last_attempt_at", "last_success_at", "status",
            "detail", "etag", "last_modified")
    row = conn.execute(f"SELECT {', '.join(keys)} FROM product_feeds WHERE name = ?",
                       (name,)).fetchone()
    return None if row is None else dict(zip(keys, row, strict=True))


def save_feed_state(conn: Connection, state: Mapping[str, Any]) -> None:
    """Insert or update a feed's state (name, url, next_at, … as feed_state returns)."""
    keys = ("name", "url", "next_at", "last_attempt_at", "last_success_at", "status",
            "detail", "etag", "last_modified")
    updates = ", ".join(f"{k} = excluded.{k}" for k in keys[1:])
    conn.execute(
        f"INSERT INTO product_feeds ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))}) "
        f"ON CONFLICT (name) DO UPDATE SET {updates}", [state.get(k) for k in keys])
