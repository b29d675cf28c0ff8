"""What differs between the storage engines, in one place.

Kanal's SQL is written once, in the subset SQLite (≥ 3.35) and PostgreSQL (≥ 14) share:
`?` markers, `INSERT … ON CONFLICT … DO NOTHING / DO UPDATE`, `RETURNING`,
`coalesce(sum(x), 0)`, `CASE` instead of scalar `max(a, b)`, integer epoch-ms times,
0/1 integers for flags. What can't be shared is named here, and the store modules ask
their connection's `dialect` for it explicitly; nothing rewrites SQL text at run time,
except the parameter markers of PostgreSQL (store/postgres.py says why).

- DDL types: `Dialect.ddl` fills the placeholders of a migration's statement.
  {ID} a generated id that is never reused (SQLite AUTOINCREMENT, a PostgreSQL identity);
  {INT} a 64-bit integer (SQLite's INTEGER is already 64-bit, PostgreSQL's is not);
  {REAL} a double; {TEXT} text, compared byte by byte on both engines (PostgreSQL's
  `COLLATE "C"`, as SQLite's BINARY: sort orders and prefix ranges agree);
  {WITHOUT_ROWID} SQLite's clustered tables (nothing on PostgreSQL, where every table
  is a heap). A literal brace in DDL is written twice (`DEFAULT '{{}}'`).
- JSON in queries: `json_value(column, *path)`, a value inside a JSON text column
  returned as the engine decodes it (numbers as numbers, objects as JSON text on
  SQLite and as dicts on PostgreSQL: callers accept both).
- Locking primitives: `lock_sql` (PostgreSQL advisory locks; SQLite has one writer),
  and `skip_locked`, the clause a claim's SELECT ends with (PostgreSQL's
  `FOR UPDATE SKIP LOCKED`: several nodes claim side by side, each skipping the rows
  another is claiming; nothing on SQLite, whose one writer claims alone).
- The event log's layout: on PostgreSQL `events` is partitioned by month (the month is
  in the id) and its messageId dedupe lives in `event_keys` (`partitioned_events`;
  store/partitions.py); on SQLite it is one table with a unique index.
- The join that keeps its left side as the outer loop (`ordered_join`), and the
  substring test (`contains`).
- The catalog (`tables`, `columns`, `primary_key`, `references`) and the id counters
  of generated ids (`next_id`, `set_next_id`), for `kanal db copy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .connection import Connection

_INTERNAL = ("sqlite_sequence", "kanal_migrations", "event_keys")
"""Tables of the engines' and the migrations' own bookkeeping, never copied (PostgreSQL's
`event_keys` is kept by a trigger on `events`: store/partitions.py)."""

SQLITE: Final = "sqlite"
POSTGRESQL: Final = "postgresql"


@dataclass(frozen=True)
class Dialect:
    """The SQL one engine needs where the engines differ."""

    name: str
    types: dict[str, str]
    ordered_join: str
    """`a <ordered_join> b ON …`: SQLite's CROSS JOIN fixes the loop order (the planner
    would otherwise pick it); PostgreSQL's planner picks well and has no CROSS JOIN … ON."""
    lock_sql: str | None
    """A statement taking transaction-scoped lock `?` (None: the engine has one writer)."""
    skip_locked: str
    """What a claim's SELECT ends with: lock the rows it returns, skipping rows another
    transaction has locked (nothing where one writer claims alone)."""
    partitioned_events: bool
    """True when `events` is partitioned by month (store/partitions.py)."""

    def ddl(self, template: str) -> str:
        """A migration's statement with this engine's types filled in."""
        return template.format(**self.types)

    def json_value(self, column: str, *path: str) -> str:
        """The SQL of the value at `path` inside the JSON text in `column`."""
        for key in path:
            if not key.replace("_", "").isalnum():
                raise ValueError(f"JSON path keys must be plain names, not {key!r}")
        if self.name == SQLITE:
            return f"json_extract({column}, '$.{'.'.join(path)}')"
        # json (not jsonb): a text with \u0000 in a string is still valid json.
        return f"({column})::json #> '{{{','.join(path)}}}'"

    def json_int(self, column: str, *path: str) -> str:
        """The SQL of the integer at `path` inside the JSON text in `column` (for joins)."""
        if self.name == SQLITE:
            return self.json_value(column, *path)
        return f"(({column})::json #>> '{{{','.join(path)}}}')::bigint"

    def restart_ids(self, table: str) -> str:
        """The statement that makes `table`'s next generated id 1 again (an emptied table)."""
        if self.name == SQLITE:
            return f"DELETE FROM sqlite_sequence WHERE name = '{table}'"
        return f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1, false)"

    def tables(self, conn: Connection) -> list[str]:
        """Kanal's tables in this database, by name."""
        if self.name == SQLITE:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").fetchall()
        else:  # a partition is part of its table, not a table of its own
            rows = conn.execute("SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') "
                                "AND NOT relispartition "
                                "AND relnamespace = current_schema()::regnamespace"
                                ).fetchall()
        return sorted(str(r[0]) for r in rows if r[0] not in _INTERNAL)

    def columns(self, conn: Connection, table: str) -> list[str]:
        """A table's columns, in their order."""
        if self.name == SQLITE:
            return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({_name(table)})")]
        return [str(r[0]) for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]

    def primary_key(self, conn: Connection, table: str) -> list[str]:
        """A table's primary key columns, in key order."""
        if self.name == SQLITE:
            cols = [(int(r[5]), str(r[1])) for r in
                    conn.execute(f"PRAGMA table_info({_name(table)})") if int(r[5])]
            return [name for _, name in sorted(cols)]
        return [str(r[0]) for r in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = to_regclass(?) AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)", (table,))]

    def references(self, conn: Connection, table: str) -> set[str]:
        """The tables `table` has foreign keys to."""
        if self.name == SQLITE:
            return {str(r[2]) for r in conn.execute(f"PRAGMA foreign_key_list({_name(table)})")}
        return {str(r[0]) for r in conn.execute(
            "SELECT confrelid::regclass::text FROM pg_constraint "
            "WHERE conrelid = to_regclass(?) AND contype = 'f'", (table,))}

    def next_id(self, conn: Connection, table: str) -> int | None:
        """The id the table's generated ids continue from (past every id ever handed
        out, deleted rows included), or None for a table without generated ids."""
        if self.primary_key(conn, table) != ["id"]:
            return None
        top = conn.execute(f"SELECT max(id) FROM {_name(table)}").fetchone()
        if self.name == SQLITE:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?",
                               (table,)).fetchone()
            return max(int(row[0]) if row else 0, int(top[0] or 0)) + 1
        seq = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if seq is None or seq[0] is None:
            return None
        last = conn.execute(f"SELECT last_value, is_called FROM {seq[0]}").fetchone()
        handed = int(last[0]) + 1 if last[1] else int(last[0])
        return max(handed, int(top[0] or 0) + 1)

    def set_next_id(self, conn: Connection, table: str, value: int) -> None:
        """Make the table's next generated id `value` (never lower than it is)."""
        if self.name == SQLITE:
            conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?",
                         (value - 1, table, value - 1))
            conn.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS "
                         "(SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                         (table, value - 1, table))
            return
        seq = conn.execute("SELECT pg_get_serial_sequence(?, 'id')", (table,)).fetchone()
        if seq is None or seq[0] is None:
            return
        last, called = conn.execute(f"SELECT last_value, is_called FROM {seq[0]}").fetchone()
        if (int(last) + 1 if called else int(last)) < value:
            conn.execute("SELECT setval(?, ?, false)", (seq[0], value))

    def contains(self, haystack: str, needle_literal: str) -> str:
        """SQL true when the text `haystack` contains the SQL literal `needle_literal`."""
        if self.name == SQLITE:
            return f"instr({haystack}, {needle_literal}) > 0"
        return f"strpos({haystack}, {needle_literal}) > 0"


def _name(table: str) -> str:
    """A table name checked to be a plain identifier (it goes into SQL text)."""
    if not table.replace("_", "").isalnum():
        raise ValueError(f"not a table name: {table!r}")
    return table


SQLITE_DIALECT = Dialect(
    name=SQLITE,
    types={"ID": "INTEGER PRIMARY KEY AUTOINCREMENT", "INT": "INTEGER", "REAL": "REAL",
           "TEXT": "TEXT", "WITHOUT_ROWID": " WITHOUT ROWID"},
    ordered_join="CROSS JOIN",
    lock_sql=None,
    skip_locked="",
    partitioned_events=False,
)

POSTGRESQL_DIALECT = Dialect(
    name=POSTGRESQL,
    types={"ID": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "INT": "BIGINT",
           "REAL": "DOUBLE PRECISION", "TEXT": 'TEXT COLLATE "C"', "WITHOUT_ROWID": ""},
    ordered_join="JOIN",
    lock_sql="SELECT pg_advisory_xact_lock(?, ?)",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    partitioned_events=True,
)

# Advisory lock keys (two 32-bit halves): the first names Kanal ("Kanl"), the second
# the lock. Advisory locks are per database, so Kanal databases sharing a server don't
# block each other.
LOCK_SPACE: Final = 0x4B616E6C
WRITER_LOCK: Final = 1
"""Every write transaction but ingest's: what SQLite's single writer gives for free."""
PRUNE_LOCK: Final = 3
"""Held (session-scoped) by `kanal events prune` while it runs: one prune at a time."""
APPEND_LOCK: Final = 2
"""Taken before a transaction's first event insert and held to its commit: event ids are
handed out and become visible in the same order, so `id > cursor` never skips one."""
