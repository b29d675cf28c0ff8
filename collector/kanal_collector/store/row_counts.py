"""How many rows some tables have, kept by triggers as rows come and go.

`row_counts` holds (table name, rows). Counting a table's rows reads all of them on both
engines (SQLite walks the smallest index, PostgreSQL scans the table): 6.7 ms for the
500,000 profiles of a 10M-event database, and growing with every customer. The KPI
overview and the admin API's people list show the number of profiles on every load, so
triggers on `profiles` keep it instead: whatever adds or deletes a profile (the
processor, a merge, `kanal forget`, `profiles rebuild`, `kanal db copy`) counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from .connection import Connection
from .dialect import SQLITE

COUNTED = ("profiles",)
"""The tables whose rows are counted."""

_SQLITE_TRIGGERS: Sequence[str] = tuple(
    statement for table in COUNTED for statement in (
        f"CREATE TRIGGER row_counts_{table}_insert AFTER INSERT ON {table} BEGIN "
        f"UPDATE row_counts SET n = n + 1 WHERE name = '{table}'; END",
        f"CREATE TRIGGER row_counts_{table}_delete AFTER DELETE ON {table} BEGIN "
        f"UPDATE row_counts SET n = n - 1 WHERE name = '{table}'; END",
    ))

_POSTGRES_FUNCTION = """CREATE FUNCTION kanal_row_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE row_counts SET n = n + 1 WHERE name = TG_TABLE_NAME;
        ELSE
            UPDATE row_counts SET n = n - 1 WHERE name = TG_TABLE_NAME;
        END IF;
        RETURN NULL;
    END $$"""


def create(conn: Connection) -> None:
    """Make the table and its triggers, counting the rows there are (migration 29)."""
    conn.execute(conn.dialect.ddl(
        """CREATE TABLE row_counts (
            name {TEXT} PRIMARY KEY, n {INT} NOT NULL
        )"""))
    if conn.dialect.name == SQLITE:
        for statement in _SQLITE_TRIGGERS:
            conn.execute(statement)
    else:
        conn.execute(_POSTGRES_FUNCTION)
        for table in COUNTED:
            conn.execute(f"CREATE TRIGGER row_counts_{table} AFTER INSERT OR DELETE ON "
                         f"{table} FOR EACH ROW EXECUTE FUNCTION kanal_row_counts()")
    for table in COUNTED:
        conn.execute(f"INSERT INTO row_counts (name, n) SELECT '{table}', count(*) "
                     f"FROM {table}")


def drop(conn: Connection) -> None:
    """Take the triggers (and PostgreSQL's function) away again: the table stays."""
    for table in COUNTED:
        if conn.dialect.name == SQLITE:
            conn.execute(f"DROP TRIGGER IF EXISTS row_counts_{table}_insert")
            conn.execute(f"DROP TRIGGER IF EXISTS row_counts_{table}_delete")
        else:
            conn.execute(f"DROP TRIGGER IF EXISTS row_counts_{table} ON {table}")
    if conn.dialect.name != SQLITE:
        conn.execute("DROP FUNCTION IF EXISTS kanal_row_counts")


def rows(conn: Connection, table: str) -> int:
    """How many rows `table` (one of COUNTED) has now."""
    if table not in COUNTED:
        raise ValueError(f"the rows of {table!r} are not counted")
    row = conn.execute("SELECT n FROM row_counts WHERE name = ?", (table,)).fetchone()
    return int(row[0])
