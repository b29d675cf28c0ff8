"""What people do with products, and the recommendations built from it.

    product_activity        views and cart adds per person and product (processor)
    product_orders          order lines, one per (order, product): an order twice is once
    product_alerts          back-in-stock requests
    product_recs            the lists the recommendations worker builds
    product_rec_links       which link of which outbox row showed which recommendation
    product_rec_clicks      clicks on those links
    product_rec_conversions order lines credited to the last clicked recommendation

The person-keyed tables follow merges and `kanal forget` (store/profiles.py calls
`move_profile` and `delete_profile`) and are rebuilt with the profiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .connection import Connection

PERSON_TABLES = ("product_activity", "product_orders", "product_alerts",
                 "product_rec_clicks", "product_rec_conversions")


@dataclass(frozen=True)
class OrderLine:
    """One product of one order."""

    order_key: str
    product_id: str
    profile_id: int
    at: int
    quantity: float
    price: float | None
    currency: str | None


@dataclass(frozen=True)
class RecLink:
    """A recommendation shown in a message: its link, product and kind."""

    outbox_id: int
    url: str
    product_id: str
    kind: str
    message: str | None
    journey: str | None
    at: int


# Two-argument max()/min() are SQLite's only (PostgreSQL says greatest/least): CASE is both.
_LATEST = ("last_at = CASE WHEN excluded.last_at > product_activity.last_at "
           "THEN excluded.last_at ELSE product_activity.last_at END")
_EARLIEST = ("first_at = CASE WHEN excluded.first_at < product_activity.first_at "
             "THEN excluded.first_at ELSE product_activity.first_at END")


# -- activity ---------------------------------------------------------------------------

def record_activity(conn: Connection,
                    rows: Iterable[tuple[int, str, str, int]]) -> None:
    """Count (profile_id, kind, product_id, at) views or cart adds."""
    conn.executemany(
        "INSERT INTO product_activity (profile_id, kind, product_id, first_at, last_at, count) "
        "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (profile_id, kind, product_id) DO UPDATE SET "
        "count = product_activity.count + 1, " + _LATEST + ", " + _EARLIEST,
        sorted((p, k, pid, at, at) for p, k, pid, at in rows))


def person_activity(conn: Connection, profile_id: int, kind: str,
                    limit: int = 50) -> list[tuple[str, int]]:
    """(product_id, last_at) of a person's views or cart adds, most recent first."""
    return [(r[0], int(r[1])) for r in conn.execute(
        "SELECT product_id, last_at FROM product_activity WHERE profile_id = ? AND kind = ? "
        "ORDER BY last_at DESC, product_id LIMIT ?", (profile_id, kind, limit))]


def interested_profiles(conn: Connection, product_id: str,
                        since: int) -> dict[int, str]:
    """{profile_id: "cart" or "view"} of people who carted or viewed a product since
    `since` (cart wins)."""
    out: dict[int, str] = {}
    for pid, kind in conn.execute(
            "SELECT profile_id, kind FROM product_activity WHERE product_id = ? "
            "AND kind IN ('cart', 'view') AND last_at >= ? ORDER BY profile_id",
            (product_id, since)):
        if out.get(int(pid)) != "cart":
            out[int(pid)] = str(kind)
    return out


def stream_activity(conn: Connection, since: int) -> Iterator[tuple[int, str, int, str]]:
    """(profile_id, product_id, last_at, kind) of every view and cart add since `since`,
    streamed: at 10M events these are millions of rows, too many to hold as tuples."""
    return conn.stream(
        "SELECT profile_id, product_id, last_at, kind FROM product_activity "
        "WHERE last_at >= ?", (since,))


def add_order_lines(conn: Connection, lines: Sequence[OrderLine]) -> list[OrderLine]:
    """Store order lines; returns those that were new (an order seen twice adds nothing)."""
    new: list[OrderLine] = []
    for line in lines:
        row = conn.execute(
            "INSERT INTO product_orders (order_key, product_id, profile_id, at, quantity, "
            "price, currency) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (order_key, product_id) DO NOTHING RETURNING order_key",
            (line.order_key, line.product_id, line.profile_id, line.at, line.quantity,
             line.price, line.currency)).fetchone()
        if row is not None:
            new.append(line)
    return new


def stream_orders(conn: Connection, since: int) -> Iterator[tuple[int, str, int, str]]:
    """(profile_id, product_id, at, "order") of every order line since `since`, streamed
    (the shape of `stream_activity`'s rows)."""
    return conn.stream("SELECT profile_id, product_id, at, 'order' FROM product_orders "
                       "WHERE at >= ?", (since,))


def bought_since(conn: Connection, profile_id: int, since: int) -> list[tuple[str, int]]:
    """(product_id, last bought at) of a person's purchases since `since`, newest first."""
    return [(str(r[0]), int(r[1])) for r in conn.execute(
        "SELECT product_id, max(at) AS last FROM product_orders WHERE profile_id = ? "
        "AND at >= ? GROUP BY product_id ORDER BY last DESC, product_id",
        (profile_id, since))]


def buyers_of(conn: Connection, product_id: str, since: int) -> set[int]:
    """People who bought a product since `since`."""
    return {int(r[0]) for r in conn.execute(
        "SELECT DISTINCT profile_id FROM product_orders WHERE product_id = ? AND at >= ?",
        (product_id, since))}


def orders_version(conn: Connection) -> tuple[int, int, int]:
    """A cheap fingerprint of the inputs of the recommendations: (order lines, their
    newest time, activity rows' newest time)."""
    orders = conn.execute("SELECT count(*), coalesce(max(at), 0) FROM product_orders").fetchone()
    seen = conn.execute("SELECT coalesce(max(last_at), 0) FROM product_activity").fetchone()
    return int(orders[0]), int(orders[1]), int(seen[0])


# -- back in stock ------------------------------------------------------------------------

def add_alert(conn: Connection, profile_id: int, product_id: str, at: int) -> None:
    """A person asks to be told when a product is back (again, after a notification)."""
    conn.execute(
        "INSERT INTO product_alerts (profile_id, product_id, created_at, notified_at) "
        "VALUES (?, ?, ?, NULL) ON CONFLICT (product_id, profile_id) DO UPDATE SET "
        "created_at = excluded.created_at, notified_at = NULL",
        (profile_id, product_id, at))


def remove_alert(conn: Connection, profile_id: int, product_id: str) -> None:
    """A person no longer wants to be told."""
    conn.execute("DELETE FROM product_alerts WHERE profile_id = ? AND product_id = ?",
                 (profile_id, product_id))


def waiting_alerts(conn: Connection, product_id: str) -> list[int]:
    """People waiting to hear that a product is back."""
    return [int(r[0]) for r in conn.execute(
        "SELECT profile_id FROM product_alerts WHERE product_id = ? AND notified_at IS NULL "
        "ORDER BY profile_id", (product_id,))]


def mark_notified(conn: Connection, product_id: str, profile_ids: Sequence[int],
                  at: int) -> None:
    """These people have been told (their request is used up)."""
    conn.executemany(
        "UPDATE product_alerts SET notified_at = ? WHERE product_id = ? AND profile_id = ?",
        [(at, product_id, pid) for pid in profile_ids])


def person_alerts(conn: Connection, profile_id: int) -> list[tuple[str, int, int | None]]:
    """(product_id, created_at, notified_at) of a person's back-in-stock requests."""
    return [(str(r[0]), int(r[1]), r[2]) for r in conn.execute(
        "SELECT product_id, created_at, notified_at FROM product_alerts WHERE profile_id = ? "
        "ORDER BY created_at", (profile_id,))]


# -- recommendation lists -------------------------------------------------------------------

def save_recs(conn: Connection, kind: str, lists: Mapping[str, Sequence[Any]],
              now: int) -> None:
    """Replace every list of `kind` ({product_id or "": [[id, score], …]})."""
    conn.execute("DELETE FROM product_recs WHERE kind = ?", (kind,))
    conn.executemany(
        "INSERT INTO product_recs (kind, product_id, items, built_at) VALUES (?, ?, ?, ?)",
        [(kind, pid, orjson.dumps(list(items)).decode(), now)
         for pid, items in lists.items() if items])


def load_recs(conn: Connection, kind: str,
              product_ids: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
    """{product_id: [(id, score), …]} of `kind` for these products ("" for global lists)."""
    wanted = sorted(set(product_ids))
    out: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for pid, items in conn.execute(
                f"SELECT product_id, items FROM product_recs WHERE kind = ? "
                f"AND product_id IN ({marks})", [kind, *chunk]):
            out[str(pid)] = [(str(i), float(s)) for i, s in orjson.loads(items)]
    return out


def recs_built_at(conn: Connection) -> int | None:
    """When the lists were last built (None: never)."""
    row = conn.execute("SELECT max(built_at) FROM product_recs").fetchone()
    return None if row[0] is None else int(row[0])


# -- links, clicks and conversions ------------------------------------------------------------

def add_rec_links(conn: Connection, links: Sequence[RecLink]) -> None:
    """Remember what a message showed (the first product wins a URL shown twice)."""
    conn.executemany(
        "INSERT INTO product_rec_links (outbox_id, url, product_id, kind, message, journey, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (outbox_id, url) DO NOTHING",
        [(link.outbox_id, link.url, link.product_id, link.kind, link.message, link.journey,
          link.at) for link in links])


def rec_link(conn: Connection, outbox_id: int, url: str) -> RecLink | None:
    """The recommendation behind a link of an outbox row, if it was one."""
    row = conn.execute(
        "SELECT outbox_id, url, product_id, kind, message, journey, at FROM product_rec_links "
        "WHERE outbox_id = ? AND url = ?", (outbox_id, url)).fetchone()
    return None if row is None else RecLink(*row)


def add_rec_click(conn: Connection, *, profile_id: int, link: RecLink,
                  event_id: int, at: int) -> None:
    """A click on a recommendation link (an event is counted once)."""
    conn.execute(
        "INSERT INTO product_rec_clicks (profile_id, product_id, kind, message, journey, "
        "outbox_id, event_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (event_id) DO NOTHING",
        (profile_id, link.product_id, link.kind, link.message, link.journey, link.outbox_id,
         event_id, at))


def last_rec_click(conn: Connection, profile_id: int, product_id: str, since: int,
                   until: int) -> tuple[str, str | None, str | None, int, int] | None:
    """(kind, message, journey, outbox_id, at) of the person's last click on a
    recommendation of this product in [since, until]."""
    row = conn.execute(
        "SELECT kind, message, journey, outbox_id, at FROM product_rec_clicks "
        "WHERE profile_id = ? AND product_id = ? AND at >= ? AND at <= ? "
        "ORDER BY at DESC, id DESC LIMIT 1", (profile_id, product_id, since, until)).fetchone()
    return None if row is None else (row[0], row[1], row[2], int(row[3]), int(row[4]))


def add_rec_conversion(conn: Connection, line: OrderLine, *, kind: str,
                       message: str | None, journey: str | None, outbox_id: int,
                       clicked_at: int, revenue: float) -> None:
    """Credit an order line to a recommendation (once per order and product)."""
    conn.execute(
        "INSERT INTO product_rec_conversions (order_key, product_id, profile_id, kind, "
        "message, journey, outbox_id, clicked_at, at, revenue) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (order_key, product_id) DO NOTHING",
        (line.order_key, line.product_id, line.profile_id, kind, message, journey,
         outbox_id, clicked_at, line.at, revenue))


def rec_report_rows(conn: Connection, since: int,
                    until: int) -> dict[tuple[str, str], dict[str, float]]:
    """{(kind, message): {shown, clicks, conversions, revenue}} in [since, until):
    recommendations shown (distinct message and product), clicks, credited order lines
    and their revenue, each by its own time."""
    out: dict[tuple[str, str], dict[str, float]] = {}

    def cell(kind: str, message: str | None) -> dict[str, float]:
        return out.setdefault((kind, message or ""), {"shown": 0, "clicks": 0,
                                                       "conversions": 0, "revenue": 0.0})

    for kind, message, n in conn.execute(
            "SELECT kind, message, count(DISTINCT outbox_id || ' ' || product_id) "
            "FROM product_rec_links WHERE at >= ? AND at < ? GROUP BY kind, message",
            (since, until)):
        cell(kind, message)["shown"] = int(n)
    for kind, message, n in conn.execute(
            "SELECT kind, message, count(*) FROM product_rec_clicks WHERE at >= ? AND at < ? "
            "GROUP BY kind, message", (since, until)):
        cell(kind, message)["clicks"] = int(n)
    for kind, message, n, revenue in conn.execute(
            "SELECT kind, message, count(*), coalesce(sum(revenue), 0) "
            "FROM product_rec_conversions WHERE at >= ? AND at < ? GROUP BY kind, message",
            (since, until)):
        c = cell(kind, message)
        c["conversions"] = int(n)
        c["revenue"] = float(revenue)
    return out


# -- merges, forget, rebuild ------------------------------------------------------------------

def move_profile(conn: Connection, into: int, other: int) -> None:
    """Move a merged-away person's product rows onto the surviving profile."""
    conn.execute(
        "INSERT INTO product_activity (profile_id, kind, product_id, first_at, last_at, count) "
        "SELECT ?, kind, product_id, first_at, last_at, count FROM product_activity "
        "WHERE profile_id = ? ON CONFLICT (profile_id, kind, product_id) DO UPDATE SET "
        "count = product_activity.count + excluded.count, " + _LATEST + ", " + _EARLIEST,
        (into, other))
    conn.execute("DELETE FROM product_activity WHERE profile_id = ?", (other,))
    conn.execute(
        "INSERT INTO product_alerts (profile_id, product_id, created_at, notified_at) "
        "SELECT ?, product_id, created_at, notified_at FROM product_alerts WHERE profile_id = ? "
        "ON CONFLICT (product_id, profile_id) DO UPDATE SET "
        "created_at = CASE WHEN excluded.created_at > product_alerts.created_at "
        "THEN excluded.created_at ELSE product_alerts.created_at END, "
        "notified_at = CASE WHEN product_alerts.notified_at IS NULL "
        "OR excluded.notified_at IS NULL THEN NULL "
        "WHEN excluded.notified_at > product_alerts.notified_at THEN excluded.notified_at "
        "ELSE product_alerts.notified_at END", (into, other))
    conn.execute("DELETE FROM product_alerts WHERE profile_id = ?", (other,))
    for table in ("product_orders", "product_rec_clicks", "product_rec_conversions"):
        conn.execute(f"UPDATE {table} SET profile_id = ? WHERE profile_id = ?", (into, other))


def delete_profile(conn: Connection, profile_id: int) -> None:
    """Delete a forgotten person's product rows."""
    for table in PERSON_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE profile_id = ?", (profile_id,))


def clear_people(conn: Connection) -> None:
    """Delete every person's product rows (`kanal profiles rebuild` replays them)."""
    for table in PERSON_TABLES:
        conn.execute(f"DELETE FROM {table}")
