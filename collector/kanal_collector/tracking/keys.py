"""Which keys sign and verify tracking tokens: the config's, else the database's.

A database gets its first random key on the first send; `kanal tracking rotate-key`
adds a newer one (the newest signs, every kept key verifies). A running collector
re-reads the stored keys every few seconds, so a rotation by the CLI is seen without
a restart.
"""

from __future__ import annotations

import secrets
import threading
import time

from ..store import tracking as store
from ..store.connection import Connection
from . import tokens

KEY_BYTES = 32
_RELOAD_SECONDS = 5.0


def new_key(now_ms: int) -> store.SigningKey:
    """A fresh random key."""
    return store.SigningKey(secrets.token_bytes(KEY_BYTES), now_ms)


def load_keys(conn: Connection, configured: tuple[bytes, ...], now_ms: int
              ) -> list[bytes]:
    """The keys in force, newest (the signing key) first; creates the first stored key."""
    if configured:
        return list(configured)
    return [k.secret for k in store.ensure_signing_key(conn, new_key(now_ms))]


def rotate(conn: Connection, now_ms: int, keep: int | None = None
           ) -> list[store.SigningKey]:
    """Add a new signing key; keep the newest `keep` keys in all (None: every key)."""
    if keep is not None and keep < 1:
        raise ValueError("keep: must be at least 1")
    return store.add_signing_key(conn, new_key(now_ms), keep)


class KeyCache:
    """The verifying keys of a running collector, re-read every few seconds (so a key
    dropped by `rotate-key --keep` stops verifying) and whenever a token fails to verify
    (so a key added by another process verifies at once)."""

    def __init__(self, configured: tuple[bytes, ...]) -> None:
        self._configured = configured
        self._keys: list[bytes] = []
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def keys(self, conn: Connection, now_ms: int) -> list[bytes]:
        """The keys in force (cached for a few seconds)."""
        if time.monotonic() - self._loaded < _RELOAD_SECONDS:
            return self._keys
        return self.reload(conn, now_ms)

    def reload(self, conn: Connection, now_ms: int) -> list[bytes]:
        """Read the keys again; return them."""
        with self._lock:
            self._keys = load_keys(conn, self._configured, now_ms)
            self._loaded = time.monotonic()
        return self._keys

    def read(self, conn: Connection, token: str, purpose: int, now_ms: int
             ) -> tokens.Token | None:
        """Verify a token, re-reading the stored keys once if it fails with cached ones."""
        keys = self.keys(conn, now_ms)
        found = tokens.read_token(keys, token, purpose)
        if found is None and not self._configured and tokens.well_formed(token, purpose):
            fresh = self.reload(conn, now_ms)
            if fresh != keys:
                found = tokens.read_token(fresh, token, purpose)
        return found
