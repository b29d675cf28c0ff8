"""Suppression at ingest: events of a forgotten person are not stored at all.

`kanal forget` keeps keyed hashes of the person's identities. The set is small and
changes rarely, so it is held in memory and re-read every few seconds; while nobody has
been forgotten the check costs one attribute lookup.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..contacts import normalise_email, normalise_phone
from ..profiles.identity import clean_id, event_country
from ..profiles.step import identity_hash
from ..store.db import Database
from ..store.privacy import suppression_state


def identities_of(msg: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The identities a message names, in the form suppression records hash them."""
    for field, kind in (("userId", "user_id"), ("anonymousId", "anonymous_id"),
                        ("previousId", "user_id")):
        value = clean_id(msg.get(field))
        if value:
            yield kind, value
    traits: dict[str, Any] = {}
    context = msg.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if isinstance(msg.get("traits"), dict):
        traits.update(msg["traits"])
    if email := normalise_email(traits.get("email")):
        yield "email", email
    if phone := normalise_phone(traits.get("phone"), event_country(traits)):
        yield "phone", phone


class Suppressions:
    """Answers "was this person forgotten?" for ingest, from a cached copy of the table."""

    def __init__(self, db: Database, *, ttl: float = 2.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._ttl = ttl
        self._monotonic = monotonic
        self._secret: str | None = None
        self._hashes: set[str] = set()
        self._expires = 0.0
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        now = self._monotonic()
        if now < self._expires:
            return
        with self._lock:
            if now < self._expires:
                return
            self._secret, self._hashes = suppression_state(self._db.conn())
            self._expires = now + self._ttl

    def active(self) -> bool:
        """False while nobody has been forgotten: `blocks` would answer False to all."""
        self._refresh()
        return bool(self._hashes) and self._secret is not None

    def blocks(self, msg: dict[str, Any]) -> bool:
        """True when any identity of `msg` belongs to a forgotten person."""
        self._refresh()
        if not self._hashes or self._secret is None:
            return False
        return any(identity_hash(self._secret, kind, value) in self._hashes
                   for kind, value in identities_of(msg))
