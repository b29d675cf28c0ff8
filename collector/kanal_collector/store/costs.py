"""Marketing costs per channel, campaign or journey, as entered through the admin API.

(kanal.toml's `[costs]` is read at report time by reports/costs.py, not stored.)
"""

from __future__ import annotations

from .connection import Connection


def put_cost(conn: Connection, dimension: str, key: str, amount: float,
             currency: str | None, now_ms: int) -> None:
    """Insert or replace the cost of one (dimension, key)."""
    conn.execute(
        "INSERT INTO costs (dimension, key, amount, currency, updated_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(dimension, key) DO UPDATE SET "
        "amount = excluded.amount, currency = excluded.currency, "
        "updated_at = excluded.updated_at",
        (dimension, key, amount, currency, now_ms),
    )


def remove_cost(conn: Connection, dimension: str, key: str) -> bool:
    """Delete the cost of one (dimension, key); True when there was one."""
    cursor = conn.execute("DELETE FROM costs WHERE dimension = ? AND key = ?",
                          (dimension, key))
    return cursor.rowcount > 0


def all_costs(conn: Connection) -> list[tuple[str, str, float, str | None, int]]:
    """Every stored cost as (dimension, key, amount, currency, updated_at), in key order."""
    return [(r[0], r[1], float(r[2]), r[3], int(r[4])) for r in conn.execute(
        "SELECT dimension, key, amount, currency, updated_at FROM costs "
        "ORDER BY dimension, key")]
