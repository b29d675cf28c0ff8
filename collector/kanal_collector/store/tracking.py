"""Email tracking tables: what each send was, the links it carried, the signing keys.

Written at send time by `tracking.prepare_email` (inside the dispatcher) and read by
the tracking routes (/c, /o, /u, /p). The signing keys live in `meta`, newest first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .connection import Connection
from .db import transaction

_KEYS = "tracking_keys"


@dataclass(frozen=True, slots=True)
class SendInfo:
    """What was sent in one outbox row, for attributing opens, clicks and unsubscribes."""

    outbox_id: int
    profile_id: int
    message: str | None
    journey: str | None
    channel: str
    topic: str | None
    sent_at: int
    """Epoch ms."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC key and when it was made (epoch ms)."""

    secret: bytes
    created_at: int


# -- signing keys -----------------------------------------------------------------------

def _decode_keys(text: str | None) -> list[SigningKey]:
    if not text:
        return []
    return [SigningKey(bytes.fromhex(k["key"]), int(k["created"])) for k in json.loads(text)]


def _encode_keys(keys: Sequence[SigningKey]) -> str:
    return json.dumps([{"key": k.secret.hex(), "created": k.created_at} for k in keys])


def signing_keys(conn: Connection) -> list[SigningKey]:
    """The stored keys, newest first (empty before the first send)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_KEYS,)).fetchone()
    return _decode_keys(None if row is None else str(row[0]))


def _put_keys(conn: Connection, keys: Sequence[SigningKey]) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (_KEYS, _encode_keys(keys)),
    )


def ensure_signing_key(conn: Connection, new: SigningKey) -> list[SigningKey]:
    """The stored keys; `new` is stored first when there are none (one transaction)."""
    keys = signing_keys(conn)
    if keys:
        return keys
    if conn.in_transaction:  # the caller's write transaction
        _put_keys(conn, [new])
        return [new]
    with transaction(conn):
        keys = signing_keys(conn)  # another process may have won the race
        if not keys:
            keys = [new]
            _put_keys(conn, keys)
    return keys


def add_signing_key(conn: Connection, new: SigningKey,
                    keep: int | None = None) -> list[SigningKey]:
    """Make `new` the signing key; older keys still verify (the newest `keep` in all)."""
    with transaction(conn):
        keys = [new, *signing_keys(conn)]
        if keep is not None:
            keys = keys[:max(keep, 1)]
        _put_keys(conn, keys)
    return keys


# -- sends and links --------------------------------------------------------------------

def record_send(conn: Connection, send: SendInfo, urls: Sequence[str]) -> None:
    """Keep what one send was and its link targets (index = position in `urls`).

    Runs in the caller's transaction when there is one; a re-prepared row (a retry)
    replaces what was recorded before.
    """
    conn.execute(
        "INSERT INTO tracking_sends (outbox_id, profile_id, message, journey, "
        "channel, topic, sent_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (outbox_id) DO UPDATE "
        "SET profile_id = excluded.profile_id, message = excluded.message, "
        "journey = excluded.journey, channel = excluded.channel, topic = excluded.topic, "
        "sent_at = excluded.sent_at",
        (send.outbox_id, send.profile_id, send.message, send.journey, send.channel,
         send.topic, send.sent_at),
    )
    conn.execute("DELETE FROM tracking_links WHERE outbox_id = ?", (send.outbox_id,))
    conn.executemany(
        "INSERT INTO tracking_links (outbox_id, idx, url) VALUES (?,?,?)",
        [(send.outbox_id, i, url) for i, url in enumerate(urls)],
    )


def send_info(conn: Connection, outbox_id: int) -> SendInfo | None:
    """The recorded send of an outbox row, or None."""
    row = conn.execute(
        "SELECT outbox_id, profile_id, message, journey, channel, topic, sent_at "
        "FROM tracking_sends WHERE outbox_id = ?", (outbox_id,)
    ).fetchone()
    return None if row is None else SendInfo(*row)


def link_target(conn: Connection, outbox_id: int, index: int
                ) -> tuple[SendInfo, str] | None:
    """The send and the URL recorded for link `index` of it, or None."""
    row = conn.execute(
        "SELECT s.outbox_id, s.profile_id, s.message, s.journey, s.channel, s.topic, "
        "s.sent_at, l.url FROM tracking_links l JOIN tracking_sends s USING (outbox_id) "
        "WHERE l.outbox_id = ? AND l.idx = ?", (outbox_id, index)
    ).fetchone()
    return None if row is None else (SendInfo(*row[:7]), str(row[7]))


def profile_topics(conn: Connection, profile_id: int) -> list[tuple[str, str]]:
    """(channel, topic) of every send to a profile that had a topic."""
    return [(str(c), str(t)) for c, t in conn.execute(
        "SELECT DISTINCT channel, topic FROM tracking_sends "
        "WHERE profile_id = ? AND topic IS NOT NULL ORDER BY channel, topic", (profile_id,))]
