"""Key lookups for ingest, cached briefly so that a busy collector does not hit the
database on every request. A revoked key stops working within `ttl` seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..store.db import Database
from ..store.keys import KeyInfo, lookup_key, source_secrets

_MAX_ENTRIES = 10_000


class KeyCache:
    """Resolves keys and a source's secret keys, remembering answers for `ttl` seconds."""

    def __init__(self, db: Database, *, ttl: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._ttl = ttl
        self._monotonic = monotonic
        self._keys: dict[str, tuple[float, KeyInfo | None]] = {}
        self._secrets: dict[int, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> KeyInfo | None:
        """The live key's record; None for an unknown or revoked key."""
        now = self._monotonic()
        hit = self._keys.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        info = lookup_key(self._db.conn(), key) if 0 < len(key) <= 200 else None
        if info is not None and info.revoked:
            info = None
        with self._lock:
            if len(self._keys) >= _MAX_ENTRIES:
                self._keys.clear()  # a flood of made-up keys must not grow memory
            self._keys[key] = (now + self._ttl, info)
        return info

    def secrets(self, source_id: int) -> list[str]:
        """The live secret keys of a source."""
        now = self._monotonic()
        hit = self._secrets.get(source_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        values = source_secrets(self._db.conn(), source_id)
        self._secrets[source_id] = (now + self._ttl, values)
        return values
