"""Writing products: feeds, `kanal products import` and the admin API all come here.

Each record is checked (record.py), compared with what is stored and written only when
it changed, so importing the same file twice writes nothing the second time. A change
of price (per currency, the sale price counting) or of availability is appended to the
product's history in the same transaction; the signals worker turns history into
Kanal's own events for the people concerned. Rows are written a chunk per transaction,
so a running `kanal serve` keeps ingesting meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store import products as store
from ..store.connection import Connection
from ..store.db import transaction
from .errors import InvalidProduct
from .record import effective_price, normalize, record_hash

Row = tuple[int, Mapping[str, Any] | str]


@dataclass
class Rejected:
    """A row that was not imported, and why."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        """The report as the admin API answers it."""
        return {"rows": self.rows, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "deleted": self.deleted,
                "rejected": [{"line": r.line, "reason": r.reason} for r in self.rejected],
                "note": self.note}


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any], *, at: int,
            source: str) -> list[store.HistoryRow]:
    """The history rows of replacing `old` (a stored product, or None) by `new`."""
    avail = new["availability"]
    if old is None:
        return [store.HistoryRow(new["id"], at, "created", new["currency"], None,
                                 effective_price(new["price"], new["sale_price"]), None,
                                 avail, source)]
    rows: list[store.HistoryRow] = []
    if old.get("deleted_at") is not None:
        rows.append(store.HistoryRow(new["id"], at, "restored", None, None, None,
                                     "deleted", avail, source))
    elif old["availability"] != avail:
        rows.append(store.HistoryRow(new["id"], at, "availability", None, None, None,
                                     old["availability"], avail, source))
    before = {c: effective_price(p, s) for c, (p, s) in old["prices"].items()}
    for currency, (price, sale) in new["prices"].items():
        now = effective_price(price, sale)
        if currency in before and before[currency] != now:
            rows.append(store.HistoryRow(new["id"], at, "price", currency, before[currency],
                                         now, None, None, source))
    return rows


def write_record(conn: Connection, record: Mapping[str, Any],
                 stored: Mapping[str, Any] | None, *, source: str, now: int) -> str:
    """Store one checked record in the caller's transaction: "created", "updated" or
    "unchanged"."""
    digest = record_hash(record)
    if stored is not None and stored["hash"] == digest and stored["source"] == source \
            and stored.get("deleted_at") is None:
        return "unchanged"
    store.save_product(conn, record, source=source, hash_=digest, now=now)
    store.add_history(conn, changes(stored, record, at=now, source=source))
    return "created" if stored is None else "updated"


def delete_product(conn: Connection, product_id: str, *, source: str,
                   now: int) -> bool:
    """Delete a product in the caller's transaction (kept as a tombstone, its history
    noting it); False when there was none to delete."""
    stored = store.load_products(conn, [product_id], with_prices=False).get(product_id)
    if stored is None or not store.mark_deleted(conn, product_id, now):
        return False
    store.add_history(conn, [store.HistoryRow(product_id, now, "deleted", None, None, None,
                                              stored["availability"], "deleted", source)])
    return True


def import_rows(conn: Connection, rows: Iterable[Row], *, source: str, now: int,
                default_currency: str | None, chunk: int = 200, dry_run: bool = False,
                delete_missing: bool = False,
                progress: Callable[[int], None] | None = None) -> ImportReport:
    """Check and store rows, a chunk per transaction; see the module docstring.

    With `delete_missing`, products last written by `source` that the rows don't name
    are deleted afterwards (a full feed: what it no longer lists is gone). A row that
    was rejected but names its id protects that product from deletion.
    """
    report = ImportReport()
    seen: dict[str, int] = {}
    pending: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        if pending and not dry_run:
            with transaction(conn):
                stored = store.load_products(conn, [r["id"] for _, r in pending])
                for _, record in pending:
                    outcome = write_record(conn, record, stored.get(record["id"]),
                                           source=source, now=now)
                    setattr(report, outcome, getattr(report, outcome) + 1)
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for line, row in rows:
        report.rows += 1
        if isinstance(row, str):
            report.rejected.append(Rejected(line, row))
            if progress is not None:
                progress(1)
            continue
        try:
            record = normalize(row, default_currency=default_currency)
        except (InvalidProduct, ValueError) as exc:
            report.rejected.append(Rejected(line, str(exc)))
            named = row.get("id") or row.get("g:id") or row.get("product_id")
            if isinstance(named, str) and named.strip():
                seen.setdefault(named.strip(), line)
            if progress is not None:
                progress(1)
            continue
        if record["id"] in seen:
            report.rejected.append(Rejected(
                line, f"id {record['id']!r} is already on line {seen[record['id']]}"))
            continue
        seen[record["id"]] = line
        pending.append((line, record))
        if len(pending) >= chunk:
            flush()
    flush()
    if delete_missing:
        _delete_missing(conn, report, set(seen), source=source, now=now, dry_run=dry_run)
    return report


def _delete_missing(conn: Connection, report: ImportReport, seen: set[str], *,
                    source: str, now: int, dry_run: bool) -> None:
    if not seen:
        report.note = "no product in the feed: nothing was deleted"
        return
    if dry_run:
        report.deleted = len(store.live_ids_of_source(conn, source) - seen)
        return
    with transaction(conn):
        for pid in sorted(store.live_ids_of_source(conn, source) - seen):
            report.deleted += delete_product(conn, pid, source=source, now=now)
