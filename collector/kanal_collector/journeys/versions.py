"""Stored versions of one journey, parsed once each (for `why` and reports)."""

from __future__ import annotations

from ..store import journeys as journey_store
from ..store.connection import Connection
from .definition import parse_journey
from .errors import JourneyError
from .model import Journey


class Versions:
    """The parsed versions of one journey (None: a version that can't be read)."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self._cache: dict[int, Journey | None] = {}

    def get(self, version: int) -> Journey | None:
        """One version, parsed (cached)."""
        if version not in self._cache:
            text = journey_store.version_text(self.conn, self.name, version)
            try:
                self._cache[version] = None if text is None else parse_journey(
                    text, source=f"{self.name} v{version}", name=self.name, strict=False)
            except JourneyError:
                self._cache[version] = None
        return self._cache[version]

