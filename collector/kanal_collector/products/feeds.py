"""Reading a product feed file: CSV (or TSV), JSON lines, or Merchant Center XML.

Every reader yields (line, row): a row is a mapping of fields (record.py reads them),
or a text saying why the line could not be read. CSV and JSON lines are read the way
`kanal import` reads them (profiles/importer.py); XML by merchant.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..profiles.importer import count_rows as count_lines
from ..profiles.importer import read_rows
from .errors import FeedError
from .merchant import read_merchant

_SUFFIXES = {".xml": "xml", ".rss": "xml", ".atom": "xml", ".csv": "csv", ".tsv": "csv",
             ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

Row = tuple[int, dict[str, Any] | str]


def detect_format(path: Path, fmt: str = "auto") -> str:
    """csv, jsonl or xml: `fmt` when given, else by the file's name, else by its start."""
    if fmt != "auto":
        return fmt
    if path.suffix.lower() in _SUFFIXES:
        return _SUFFIXES[path.suffix.lower()]
    with path.open("rb") as f:
        head = f.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "xml"
    return "jsonl" if head.startswith(b"{") else "csv"


def read_feed(path: Path, fmt: str = "auto") -> Iterator[Row]:
    """(line, row or why not) for every product of a feed file."""
    kind = detect_format(path, fmt)
    if kind == "xml":
        with path.open("rb") as stream:
            yield from read_merchant(stream)
        return
    try:
        yield from read_rows(path, csv_file=kind == "csv")
    except UnicodeDecodeError as exc:
        raise FeedError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def count_products(path: Path, fmt: str = "auto") -> int:
    """Products in a feed file, roughly, for a progress bar."""
    if detect_format(path, fmt) != "xml":
        return count_lines(path)
    total = 0
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            data = tail + chunk
            total += data.count(b"<item") + data.count(b"<entry")
            tail = data[-6:]
            total -= tail.count(b"<item") + tail.count(b"<entry")
    return total + tail.count(b"<item") + tail.count(b"<entry")
