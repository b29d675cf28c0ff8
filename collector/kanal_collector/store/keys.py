"""Sources and their keys.

Keys are looked up by their SHA-256, and only a short prefix is kept for display.
Secret keys are also kept whole: they are the HMAC keys that verify a browser's
`context.userHash`, so the collector needs them (whoever holds the database file
holds every profile anyway).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace

from .connection import Connection
from .db import transaction

KINDS = ("public", "secret", "admin")
_PREFIX = {"public": "pk_", "secret": "sk_", "admin": "ak_"}
_SHOWN = 10  # characters of a key kept for display: "pk_" and 7 random ones
PREFIX_LENGTH = _SHOWN
"""How many characters of a key are kept (and listed) as its prefix."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a key is allowed to do and where its events belong."""

    id: int
    kind: str
    source_id: int | None
    source_name: str | None
    name: str | None
    prefix: str
    created_at: int
    revoked_at: int | None

    @property
    def revoked(self) -> bool:
        """True once the key has been revoked."""
        return self.revoked_at is not None


def hash_key(key: str) -> str:
    """The lookup hash of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key(kind: str) -> str:
    """A fresh random key of `kind`, e.g. pk_…"""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return _PREFIX[kind] + secrets.token_urlsafe(24)


def create_source(conn: Connection, name: str, now_ms: int) -> int:
    """Add a source; ValueError when the name is taken or empty."""
    name = name.strip()
    if not name:
        raise ValueError("source name must not be empty")
    with transaction(conn):
        if conn.execute("SELECT 1 FROM sources WHERE name = ?", (name,)).fetchone():
            raise ValueError(f"a source named {name!r} already exists")
        row = conn.execute(
            "INSERT INTO sources (name, created_at) VALUES (?, ?) RETURNING id", (name, now_ms)
        ).fetchone()
        return int(row[0])


def source_id(conn: Connection, name: str) -> int | None:
    """The id of the source called `name`, or None."""
    row = conn.execute("SELECT id FROM sources WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def list_sources(conn: Connection) -> list[tuple[int, str, int]]:
    """(id, name, created_at) of every source."""
    return [(int(r[0]), str(r[1]), int(r[2]))
            for r in conn.execute("SELECT id, name, created_at FROM sources ORDER BY id")]


def has_sources(conn: Connection) -> bool:
    """False on a database that has never been set up."""
    return conn.execute("SELECT 1 FROM sources LIMIT 1").fetchone() is not None


def _insert_key(
    conn: Connection, kind: str, now_ms: int, source: str | None, name: str | None
) -> str:
    key = new_key(kind)
    sid: int | None = None
    if kind != "admin":
        source = source or "default"
        sid = source_id(conn, source)
        if sid is None:
            raise ValueError(
                f"no source named {source!r}; create it with `kanal sources create {source}`"
            )
    elif source is not None:
        raise ValueError("admin keys belong to no source; drop --source")
    conn.execute(
        "INSERT INTO keys (kind, source_id, name, prefix, key_hash, secret, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, sid, name, key[:_SHOWN], hash_key(key),
         key if kind == "secret" else None, now_ms),
    )
    return key


def create_key(
    conn: Connection, kind: str, now_ms: int, *,
    source: str | None = None, name: str | None = None,
) -> str:
    """Make a key and return it whole (the only time it is shown).

    Public and secret keys belong to a source (default "default"); admin keys to none.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    with transaction(conn):
        return _insert_key(conn, kind, now_ms, source, name)


def bootstrap(conn: Connection, now_ms: int) -> dict[str, str] | None:
    """On a database without sources, create the "default" source with a public, a
    secret and an admin key and return them; None when already set up."""
    with transaction(conn):
        if has_sources(conn):
            return None
        conn.execute("INSERT INTO sources (name, created_at) VALUES ('default', ?)", (now_ms,))
        return {kind: _insert_key(conn, kind, now_ms, None, "first start") for kind in KINDS}


_SELECT = (
    "SELECT k.id, k.kind, k.source_id, s.name, k.name, k.prefix, k.created_at, k.revoked_at "
    "FROM keys k LEFT JOIN sources s ON s.id = k.source_id"
)


def _info(row: tuple[object, ...]) -> KeyInfo:
    return KeyInfo(*row)  # type: ignore[arg-type]


def lookup_key(conn: Connection, key: str) -> KeyInfo | None:
    """The key's record (revoked ones included), or None for an unknown key."""
    row = conn.execute(f"{_SELECT} WHERE k.key_hash = ?", (hash_key(key),)).fetchone()
    return None if row is None else _info(row)


def list_keys(conn: Connection) -> list[KeyInfo]:
    """Every key, oldest first (prefixes only)."""
    return [_info(r) for r in conn.execute(f"{_SELECT} ORDER BY k.id")]


def revoke_key(conn: Connection, key_or_prefix: str, now_ms: int) -> KeyInfo:
    """Revoke a key given whole or by the prefix `keys list` shows; ValueError if unclear."""
    with transaction(conn):
        rows = conn.execute(
            f"{_SELECT} WHERE k.key_hash = ? OR k.prefix = ?",
            (hash_key(key_or_prefix), key_or_prefix),
        ).fetchall()
        if not rows:
            raise ValueError(f"no key matches {key_or_prefix!r}")
        if len(rows) > 1:
            raise ValueError(f"{key_or_prefix!r} matches {len(rows)} keys; give the whole key")
        info = _info(rows[0])
        if info.revoked_at is None:
            conn.execute("UPDATE keys SET revoked_at = ? WHERE id = ?", (now_ms, info.id))
            info = replace(info, revoked_at=now_ms)
    return info


def source_secrets(conn: Connection, source_id: int) -> list[str]:
    """The live secret keys of a source (the HMAC keys of `context.userHash`)."""
    return [str(r[0]) for r in conn.execute(
        "SELECT secret FROM keys WHERE source_id = ? AND kind = 'secret' "
        "AND revoked_at IS NULL AND secret IS NOT NULL", (source_id,)
    )]
