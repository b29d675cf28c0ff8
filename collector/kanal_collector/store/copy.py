"""Copy a Kanal database to another one, of either engine (`kanal db copy`).

The copy is a sync: every table is walked in primary-key order, a page of rows at a
time, and each page is compared with the target's rows of the same key range; a page
that differs is replaced there (delete the range, bulk-insert the page) in one
transaction, and target rows past the source's last key are deleted. So a run that was
stopped continues where it stopped (the pages already copied compare equal and cost a
read), a second run after the source kept changing (a copy while Kanal serves) brings
the target up to date, updates and deletes included, and a run over an unchanged
source writes nothing. Afterwards both sides are counted and digested again, a table at
a time, and the generated-id counters of the target are moved past every id the source
ever handed out (deleted rows included), so no id is reused and no consumer cursor can
skip an event.

While the source is written to, each page is a snapshot of its own, not the whole
table: copy once while serving, then stop Kanal and copy again (the cut-over of docs/storage.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .connection import Connection
from .db import transaction
from .partitions import cover_ids
from .schema import schema_version

PAGE = 2000
"""Rows compared and, when they differ, rewritten at a time."""
KEPT_BY_TRIGGERS = ("journey_marks", "predict_counts", "row_counts")
"""Tables the target's triggers write as other tables are copied into it (funnel_days,
score_counts, row_counts): copied last, so they end up as the source has them, not with
what the triggers added on top."""


@dataclass
class TableCopy:
    """What happened to one table."""

    table: str
    source_rows: int = 0
    target_rows: int = 0
    source_digest: str = ""
    target_digest: str = ""
    pages_written: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    """Target rows past the source's last key, deleted."""

    @property
    def same(self) -> bool:
        """True when the target's rows equal the source's."""
        return (self.source_rows, self.source_digest) == (self.target_rows, self.target_digest)


Progress = Callable[[str, int, int], None]
"""progress(table, rows done, rows in the table)."""


class CopyError(Exception):
    """The databases can't be copied into each other as they are."""


def plan(source: Connection, target: Connection) -> list[str]:
    """The tables to copy, each after the tables its foreign keys point at, and the
    tables kept by triggers last."""
    tables = source.dialect.tables(source)
    missing = sorted(set(tables) - set(target.dialect.tables(target)))
    if missing:
        raise CopyError(f"the target has no table {', '.join(missing)}")
    refs = {t: source.dialect.references(source, t) & set(tables) - {t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and refs[t] <= set(ordered)]
        if not ready:
            raise CopyError("the tables' foreign keys form a cycle")
        ordered += ready
    return ([t for t in ordered if t not in KEPT_BY_TRIGGERS]
            + [t for t in ordered if t in KEPT_BY_TRIGGERS])


def check_versions(source: Connection, target: Connection) -> int:
    """The schema version both share; CopyError when they differ."""
    have, want = schema_version(source), schema_version(target)
    if have != want:
        raise CopyError(f"the source is at schema version {have} and the target at {want}; "
                        "migrate both with the same Kanal first")
    return have


def _key_order(key: Sequence[str]) -> str:
    return ", ".join(key)


def _after(key: Sequence[str]) -> str:
    """`(a, b) > (?, ?)`: row values compare the same on both engines."""
    return f"({', '.join(key)}) > ({', '.join('?' * len(key))})"


def _upto(key: Sequence[str]) -> str:
    return f"({', '.join(key)}) <= ({', '.join('?' * len(key))})"


def _range(key: Sequence[str], after: Sequence[Any] | None,
           upto: Sequence[Any] | None) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") of the keys in (after, upto], and its arguments."""
    where, args = [], []
    if after is not None:
        where.append(_after(key))
        args += list(after)
    if upto is not None:
        where.append(_upto(key))
        args += list(upto)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _page(conn: Connection, table: str, columns: Sequence[str], key: Sequence[str],
          after: Sequence[Any] | None, upto: Sequence[Any] | None,
          limit: int | None) -> list[tuple[Any, ...]]:
    where, args = _range(key, after, upto)
    sql = f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {_key_order(key)}"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def _delete_range(conn: Connection, table: str, key: Sequence[str],
                  after: Sequence[Any] | None, upto: Sequence[Any] | None) -> int:
    where, args = _range(key, after, upto)
    return int(conn.execute(f"DELETE FROM {table}{where}", args).rowcount)


def _normal(value: Any) -> str:
    """A value as the digest sees it: the same on both engines (floats as floats)."""
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def digest(conn: Connection, table: str, columns: Sequence[str],
           key: Sequence[str]) -> tuple[int, str]:
    """(rows, SHA-256 of the rows in key order) of one table."""
    h = hashlib.sha256()
    count = 0
    for row in conn.stream(f"SELECT {', '.join(columns)} FROM {table} "
                           f"ORDER BY {_key_order(key)}"):
        count += 1
        h.update("\x1f".join(_normal(v) for v in row).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return count, h.hexdigest()[:16]


def _rows(conn: Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def copy_table(source: Connection, target: Connection, table: str, *,
               progress: Progress | None = None, page: int = PAGE,
               verify: bool = True) -> TableCopy:
    """Make the target's `table` equal the source's (see the module docstring)."""
    columns = source.dialect.columns(source, table)
    key = source.dialect.primary_key(source, table)
    if not key:
        raise CopyError(f"table {table} has no primary key")
    missing = sorted(set(columns) - set(target.dialect.columns(target, table)))
    if missing:
        raise CopyError(f"the target's {table} has no column {', '.join(missing)}")
    result = TableCopy(table)
    total = _rows(source, table)
    done = 0
    after: tuple[Any, ...] | None = None
    positions = [columns.index(k) for k in key]
    while True:
        rows = _page(source, table, columns, key, after, None, page)
        if not rows:
            break
        last = tuple(rows[-1][i] for i in positions)
        there = _page(target, table, columns, key, after, last, None)
        if there != rows:
            with transaction(target) as conn:
                if table == "events":
                    conn.before_append()
                    cover_ids(conn, [row[columns.index("id")] for row in rows])
                _delete_range(conn, table, key, after, last)
                conn.bulk_insert(table, columns, rows)
            result.pages_written += 1
            result.rows_written += len(rows)
        after = last
        done += len(rows)
        if progress is not None:
            progress(table, done, max(total, done))
        if len(rows) < page:
            break
    with transaction(target) as conn:  # rows the source no longer has
        result.rows_deleted = _delete_range(conn, table, key, after, None)
    _carry_ids(source, target, table)
    if verify:
        result.source_rows, result.source_digest = digest(source, table, columns, key)
        result.target_rows, result.target_digest = digest(target, table, columns, key)
    return result


def _carry_ids(source: Connection, target: Connection, table: str) -> None:
    following = source.dialect.next_id(source, table)
    if following is None:
        return
    with transaction(target) as conn:
        conn.dialect.set_next_id(conn, table, following)


def copy_database(source: Connection, target: Connection, *,
                  tables: Sequence[str] | None = None, progress: Progress | None = None,
                  verify: bool = True, page: int = PAGE) -> Iterator[TableCopy]:
    """Copy every table (or just `tables`) of `source` into `target`, yielding each
    table's outcome as it is done. Both must be at the same schema version."""
    check_versions(source, target)
    for table in plan(source, target):
        if tables is None or table in tables:
            yield copy_table(source, target, table, progress=progress, verify=verify,
                             page=page)
