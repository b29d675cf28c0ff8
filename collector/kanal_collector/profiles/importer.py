"""`kanal import`: offline purchases and customer lists (CSV or JSON lines) into the log.

Every row becomes one Segment message with origin `store`, written with the ordinary
(source, messageId) dedupe: the messageId of a row without one is a hash of its content
(and of how many identical rows came before it in the file), so importing a file again
stores nothing twice. Rows are written in their own transactions, a chunk at a time,
so a running `kanal serve` keeps ingesting and its processor picks the rows up.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import utc_iso
from ..contacts import check_email, check_phone
from ..ingest.spec import TYPES, InvalidMessage, normalize, parse_time
from ..money import amount
from ..store.connection import Connection
from ..store.db import transaction
from ..store.events import EventRow, append_events, left_out_bytes, slim_body
from .identity import clean_id, event_country

IMPORT_KEY_KIND = "import"
_TRIGGER_MARK = "trigger"
"""`context.kanal.trigger: true` on a row `kanal import --trigger` wrote: it may start
journeys as if it had just happened (journeys/gate.py)."""
MAX_ROW_BYTES = 32 * 1024
_FIELDS = {
    "type": "type", "event": "event", "userid": "userId", "user_id": "userId",
    "anonymousid": "anonymousId", "anonymous_id": "anonymousId",
    "timestamp": "timestamp", "messageid": "messageId", "message_id": "messageId",
    "previousid": "previousId", "previous_id": "previousId",
}
_SECTIONS = ("properties", "traits", "context")
_NUMERIC = frozenset({"revenue", "total", "subtotal", "price", "quantity", "value", "tax",
                      "shipping", "discount"})
_CONTACTS = ("email", "phone")


@dataclass
class Rejected:
    """A row that was not imported, and why."""

    line: int
    reason: str
    row: str


@dataclass
class InvalidContact:
    """An email or phone of an imported row that isn't valid: the row is imported, the
    value kept as an invalid trait (never an identity)."""

    line: int
    field: str
    value: str
    reason: str


@dataclass
class ImportReport:
    """What an import did."""

    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    invalid: list[InvalidContact] = field(default_factory=list)


def count_rows(path: Path) -> int:
    """Rows in a file, roughly (lines, less a CSV header), for a progress bar."""
    with path.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(lines - (1 if _is_csv(path) else 0), 0)


def _is_csv(path: Path) -> bool:
    if path.suffix.lower() in (".csv", ".tsv"):
        return True
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return False
    with path.open("r", encoding="utf-8-sig", errors="replace") as f:
        return not f.read(1).startswith("{")


def read_rows(path: Path, *, csv_file: bool | None = None
              ) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) for each row; a str instead of a row says why it is unreadable.

    `csv_file` says whether the file is CSV (else JSON lines); None: guess from its name
    and first character.
    """
    if _is_csv(path) if csv_file is None else csv_file:
        with path.open("r", encoding="utf-8-sig", newline="") as f:
            dialect: type[csv.Dialect] = csv.excel_tab if path.suffix.lower() == ".tsv" \
                else csv.excel
            reader = csv.DictReader(f, dialect=dialect)
            if reader.fieldnames is None:
                return
            for row in reader:
                if None in row:
                    yield reader.line_num, "more values than header columns"
                    continue
                yield reader.line_num, {k.strip(): v for k, v in row.items()
                                        if k and v is not None and v.strip() != ""}
        return
    with path.open("r", encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"not JSON: {exc.msg}"
                continue
            yield number, value if isinstance(value, dict) else "a row must be a JSON object"


def _number(name: str, value: Any) -> Any:
    if name not in _NUMERIC or not isinstance(value, str):
        return value
    text = value.strip()
    if text.count(",") == 1 and "." not in text:  # a decimal comma: 12,50
        text = text.replace(",", ".")
    number = amount(text)  # "NaN", "inf", "1_000" are not numbers (money.py)
    if number is None:
        raise InvalidMessage(f"{name} must be a number, not {value[:40]!r}")
    return int(number) if name == "quantity" and number.is_integer() else number


def to_message(row: dict[str, Any]) -> dict[str, Any]:
    """A Segment message from one row (flat CSV columns or a JSON object)."""
    msg: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    loose: dict[str, Any] = {}
    for key, value in row.items():
        lowered = key.lower()
        if lowered in _FIELDS:
            msg[_FIELDS[lowered]] = value.strip() if isinstance(value, str) else value
        elif lowered in _SECTIONS and isinstance(value, dict):
            sections[lowered].update(value)
        elif "." in key and key.split(".", 1)[0].lower() in _SECTIONS:
            section, name = key.split(".", 1)
            sections[section.lower()][name] = _number(name, value)
        else:
            loose[key] = _number(key, value)
    kind = msg.get("type") or ("track" if msg.get("event") else "identify")
    if kind not in TYPES:
        raise InvalidMessage(f"type must be one of {', '.join(sorted(TYPES))}, not {kind!r}")
    msg["type"] = kind
    if kind == "identify":
        sections["traits"] = {**loose, **sections["traits"]}
    else:
        for name in _CONTACTS:  # who bought: an email column of an orders file
            if name in loose:
                sections["context"].setdefault("traits", {})[name] = loose.pop(name)
        sections["properties"] = {**loose, **sections["properties"]}
    for name, values in sections.items():
        if values:
            msg[name] = values
    return msg


def _contacts(msg: dict[str, Any], default_country: str | None
              ) -> tuple[bool, list[tuple[str, str, str]]]:
    """(the row has a valid email or phone, [(field, value, why)] of invalid ones)."""
    traits = msg.get("traits") if msg["type"] == "identify" else \
        (msg.get("context") or {}).get("traits")
    traits = traits if isinstance(traits, dict) else {}
    valid = False
    invalid: list[tuple[str, str, str]] = []
    for name in _CONTACTS:
        value = traits.get(name)
        if value in (None, ""):
            continue
        checked = check_email(value) if name == "email" else \
            check_phone(value, event_country(traits) or default_country)
        if checked.value:
            valid = True
        else:
            invalid.append((name, str(value)[:200], str(checked.reason)))
    return valid, invalid


def _validate(msg: dict[str, Any], default_country: str | None
              ) -> list[tuple[str, str, str]]:
    for name in ("userId", "anonymousId"):
        if name in msg and clean_id(msg[name]) is None:
            raise InvalidMessage(f"{name} {str(msg[name])[:40]!r} is not a usable id")
    valid, invalid = _contacts(msg, default_country)
    if msg.get("userId") is not None or msg.get("anonymousId") is not None:
        normalize(msg)
        return invalid
    if not valid:
        why = "; ".join(f"{name} {value!r}: {reason}" for name, value, reason in invalid)
        raise InvalidMessage("a row needs a userId, an anonymousId, an email or a phone"
                             + (f" ({why})" if why else ""))
    if msg["type"] == "track" and not str(msg.get("event") or "").strip():
        raise InvalidMessage("track needs an event name (event)")
    if msg["type"] not in ("identify", "track"):
        raise InvalidMessage(f"{msg['type']} needs a userId or an anonymousId")
    msg.setdefault("messageId", None)
    return invalid


def triggers_journeys(body: dict[str, Any]) -> bool:
    """Whether an imported row was imported with `--trigger` (may start journeys)."""
    context = body.get("context")
    kanal = context.get("kanal") if isinstance(context, dict) else None
    return isinstance(kanal, dict) and kanal.get(_TRIGGER_MARK) is True


def to_event(row: dict[str, Any], *, source_id: int, received_ms: int,
             occurrence: int, default_country: str | None = None,
             invalid: list[tuple[str, str, str]] | None = None,
             trigger: bool = False) -> EventRow:
    """The log row of one import row; InvalidMessage when it can't be imported. Invalid
    email and phone values (still imported, as invalid traits) are added to `invalid`.

    Imported rows are history and start no journey, unless `trigger` marks them as
    meant to act now (`kanal import --trigger`).
    """
    content = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    msg = to_message(row)
    given_id = msg.get("messageId")
    found = _validate(msg, default_country)
    if invalid is not None:
        invalid.extend(found)
    if not given_id:
        digest = hashlib.sha256(f"{content}#{occurrence}".encode()).hexdigest()[:32]
        msg["messageId"] = f"import-{digest}"
    when = parse_time(msg.get("timestamp"), "timestamp")
    timestamp = received_ms if when is None else int(when * 1000)
    msg["timestamp"] = utc_iso(timestamp / 1000)
    msg["receivedAt"] = utc_iso(received_ms / 1000)
    context = msg.setdefault("context", {})
    context["library"] = {"name": "kanal-import"}
    # Set (or cleared) here only: a row can't mark itself as a trigger.
    kanal = context.get("kanal") if isinstance(context.get("kanal"), dict) else {}
    kanal = {k: v for k, v in kanal.items() if k != _TRIGGER_MARK}
    if trigger:
        kanal[_TRIGGER_MARK] = True
    if kanal:
        context["kanal"] = kanal
    else:
        context.pop("kanal", None)
    kind = msg["type"]
    name = msg.get("event") if kind == "track" else msg.get("name")
    event = name if isinstance(name, str) else None
    user_id, anonymous_id = msg.get("userId"), msg.get("anonymousId")
    slim = slim_body(msg, msg["messageId"], kind, event, user_id, anonymous_id, timestamp,
                     received_ms)
    body = json.dumps(slim, ensure_ascii=False, separators=(",", ":"))
    # The limit is on the whole row: the keys left to the columns count too.
    if len(body.encode()) + left_out_bytes(msg, slim) > MAX_ROW_BYTES:
        raise InvalidMessage(f"row is over {MAX_ROW_BYTES // 1024} KB")
    return EventRow(source_id, msg["messageId"], kind, event, user_id, anonymous_id, "store",
                    IMPORT_KEY_KIND, 1, timestamp, received_ms, body)


def import_file(conn: Connection, path: str | Path, *, source_id: int,
                received_ms: int, chunk: int = 500, dry_run: bool = False,
                progress: Callable[[int], None] | None = None,
                default_country: str | None = None,
                trigger: bool = False) -> ImportReport:
    """Import a CSV or JSON-lines file; one transaction per `chunk` rows. National phone
    numbers are read in the row's `country`, else `default_country`.

    The rows are history: they start no journey unless `trigger` is set.
    """
    path = Path(path)
    report = ImportReport()
    seen: Counter[str] = Counter()
    pending: list[EventRow] = []

    def flush() -> None:
        if pending and not dry_run:
            with transaction(conn):
                stored = append_events(conn, pending)
            report.stored += stored
            report.duplicates += len(pending) - stored
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for line, row in read_rows(path):
        report.rows += 1
        if isinstance(row, str):
            report.rejected.append(Rejected(line, row, ""))
            continue
        content = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        seen[content] += 1
        invalid: list[tuple[str, str, str]] = []
        try:
            pending.append(to_event(row, source_id=source_id, received_ms=received_ms,
                                    occurrence=seen[content], default_country=default_country,
                                    invalid=invalid, trigger=trigger))
            report.invalid += [InvalidContact(line, *found) for found in invalid]
        except (InvalidMessage, ValueError) as exc:
            report.rejected.append(Rejected(line, str(exc), content[:500]))
        if len(pending) >= chunk:
            flush()
    flush()
    return report
