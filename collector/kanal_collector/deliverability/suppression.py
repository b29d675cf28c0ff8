"""The email suppression list: add, remove, import and export (CSV).

Every email to an address on the list is skipped at enqueue and again at send time
(messages/eligibility.py), transactional ones too, with the reason `suppressed: <reason>`.
Bounces and complaints add entries themselves (feedback.py); people add them by hand
(`kanal suppressions add`, the admin API) or bring a list from another tool
(`kanal suppressions import FILE`).

CSV columns: `address` (or `email`), then optionally `reason` (default `manual`),
`detail`, and on export `source`, `outbox_id`, `created_at`, `updated_at` (ISO UTC).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from ..contacts import normalise_email
from ..store import deliverability as store
from ..store.connection import Connection
from ..store.db import transaction

REASONS = ("hard_bounce", "soft_bounces", "complaint", "manual", "unsubscribed", "invalid")
"""The reasons Kanal itself writes or suggests; imports may bring other words."""
_REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
EXPORT_COLUMNS = ("address", "reason", "detail", "source", "outbox_id", "created_at",
                  "updated_at")


def clean_address(value: str) -> str:
    """An address as the list keeps it (lower case), or ValueError."""
    address = normalise_email(value)
    if address is None:
        raise ValueError(f"address: {value!r} is not an email address")
    return address


def clean_reason(value: str | None) -> str:
    """A reason word (`hard_bounce`, `manual`, …), or ValueError."""
    reason = (value or "manual").strip().lower().replace(" ", "_").replace("-", "_")
    if not _REASON.match(reason):
        raise ValueError(f"reason: {value!r} is not a word of letters, digits and '_' "
                         f"(e.g. {', '.join(REASONS)})")
    return reason


def add(conn: Connection, address: str, *, reason: str = "manual",
        detail: str | None = None, source: str = "cli", now_ms: int) -> bool:
    """Put an address on the list (a person's edit: it replaces the reason); True when
    it wasn't on it."""
    clean = clean_address(address)
    with transaction(conn):
        return store.suppress(conn, clean, reason=clean_reason(reason), detail=detail,
                              source=source, outbox_id=None, now=now_ms, replace=True)


def remove(conn: Connection, address: str) -> bool:
    """Take an address off the list; True when it was on it."""
    clean = normalise_email(address) or address.strip().lower()
    with transaction(conn):
        return store.unsuppress(conn, clean)


@dataclass(frozen=True)
class Row:
    """One valid line of an import."""

    line: int
    address: str
    reason: str
    detail: str | None


def read_csv(handle: TextIO, name: str = "FILE") -> tuple[list[Row], list[str]]:
    """The valid rows and the problems (`NAME:LINE: what`) of a CSV file."""
    reader = csv.DictReader(handle)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    column = "address" if "address" in fields else "email" if "email" in fields else None
    if column is None:
        return [], [f"{name}:1: the header needs an 'address' (or 'email') column"]
    rows: list[Row] = []
    problems: list[str] = []
    for record in reader:
        line = reader.line_num
        values = {str(k).strip().lower(): (v or "").strip() for k, v in record.items()
                  if k is not None}
        try:
            address = clean_address(values.get(column, ""))
            reason = clean_reason(values.get("reason") or None)
        except ValueError as exc:
            problems.append(f"{name}:{line}: {exc}")
            continue
        rows.append(Row(line, address, reason, values.get("detail") or None))
    return rows, problems


def import_rows(conn: Connection, rows: Iterable[Row], *, now_ms: int,
                source: str = "import") -> tuple[int, int]:
    """Add the rows in one transaction; (added, already on the list). An address already
    listed keeps its entry (an old list never overwrites a newer reason)."""
    added = kept = 0
    with transaction(conn):
        for row in rows:
            if store.suppress(conn, row.address, reason=row.reason, detail=row.detail,
                              source=source, outbox_id=None, now=now_ms):
                added += 1
            else:
                kept += 1
    return added, kept


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_lines(conn: Connection, *, reason: str | None = None) -> Iterator[str]:
    """The list as CSV, a line at a time (header first), in address order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    for s in store.all_suppressions(conn, reason=reason):
        writer.writerow([s.address, s.reason, s.detail or "", s.source,
                         "" if s.outbox_id is None else s.outbox_id, _iso(s.created_at),
                         _iso(s.updated_at)])
        yield flush()
