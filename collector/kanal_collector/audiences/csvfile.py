"""The `csv` destination: every change appended to a CSV file, for platforms without an
API (upload the file by hand) or a tool of your own.

Settings (`[audiences.NAME]`, destination = "csv"): `path` (the file; created with a
header line when missing) and `batch_size` (rows per write, default 10,000).

Columns: `action` (add or remove), `at` (UTC time of the write), then the hashed
identifiers of generic.py. A batch is acknowledged once its lines are written and the
file is flushed to disk (fsync), so a batch cut short by a crash may appear twice, never
not at all.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..clock import utc_iso
from .destination import BatchResult, Destination, Request, Row
from .errors import PermanentError
from .generic import COLUMNS, generic_row
from .http import setting_int, text
from .person import Person

MAX_ROWS = 100_000
HEADER = ("action", "at", *COLUMNS)


class CsvDestination(Destination):
    """Appends each change as a line of a CSV file."""

    name: ClassVar[str] = "csv"
    max_batch: ClassVar[int] = MAX_ROWS

    def __init__(self, settings: Mapping[str, Any], *, audience: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, audience=audience)
        self.path = Path(text(settings, "path", required=True))
        self.batch_size = setting_int(settings, "batch_size", 10_000, high=MAX_ROWS)
        self._clock = clock

    def row(self, person: Person) -> Row | None:
        """The generic row (generic.py)."""
        return generic_row(person)

    def lines(self, action: str, rows: Sequence[Row], *, header: bool) -> str:
        """The CSV text a batch appends (with the header line when the file is new)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(HEADER)
        at = utc_iso(self._clock())
        for r in rows:
            writer.writerow([action, at, *(r.get(c, "") for c in COLUMNS)])
        return out.getvalue()

    def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
        """What would be appended to the file."""
        new = not self.path.exists() or self.path.stat().st_size == 0
        return [Request("APPEND", str(self.path), self.lines(action, rows, header=new))]

    def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
        """Append the batch's lines and fsync."""
        try:
            with self.path.open("a", encoding="utf-8", newline="") as f:
                f.write(self.lines(action, rows, header=f.tell() == 0))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise PermanentError(f"can't write {self.path}: {exc.strerror or exc}") from None
        return BatchResult()
