"""Identities: which profile an anonymousId, userId, email, phone, push token or web push
subscription names.

Written by the processor's profiles step (and moved by merges, deleted by `kanal
forget`); read wherever a person is looked up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .chunks import chunks
from .connection import Connection

# Identity kinds, in the order a bare value given by an operator is looked up.
KINDS = ("user_id", "email", "phone", "anonymous_id", "push_token", "webpush")


def identity_profile(conn: Connection, kind: str, value: str) -> int | None:
    """The profile an identity points at, or None."""
    row = conn.execute(
        "SELECT profile_id FROM identities WHERE kind = ? AND value = ?", (kind, value)
    ).fetchone()
    return None if row is None else int(row[0])


def identity_profiles(conn: Connection,
                      keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The profile of each of these (kind, value) identities that exists."""
    by_kind: dict[str, set[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, set()).add(value)
    out: dict[tuple[str, str], int] = {}
    for kind, values in by_kind.items():
        for chunk in chunks(sorted(values), 500):
            marks = ",".join("?" * len(chunk))
            for value, pid in conn.execute(
                    f"SELECT value, profile_id FROM identities WHERE kind = ? "
                    f"AND value IN ({marks})", [kind, *chunk]):
                out[(kind, str(value))] = int(pid)
    return out


def add_identities(conn: Connection,
                   rows: Sequence[tuple[str, str, int, int | None]]) -> None:
    """Point new identities at profiles: (kind, value, profile_id, first event id)."""
    conn.executemany(
        "INSERT INTO identities (kind, value, profile_id, first_event) VALUES (?, ?, ?, ?)",
        rows,
    )


def add_identity(conn: Connection, kind: str, value: str, profile_id: int,
                 event_id: int | None) -> None:
    """Point an identity at a profile (it must not point anywhere yet)."""
    conn.execute(
        "INSERT INTO identities (kind, value, profile_id, first_event) VALUES (?, ?, ?, ?)",
        (kind, value, profile_id, event_id),
    )


def delete_identity(conn: Connection, kind: str, value: str) -> bool:
    """Remove an identity (a push subscription the push service says is gone)."""
    cur = conn.execute("DELETE FROM identities WHERE kind = ? AND value = ?", (kind, value))
    return bool(cur.rowcount)


def profile_identities(conn: Connection, profile_id: int) -> list[tuple[str, str]]:
    """(kind, value) of every identity of a profile, sorted."""
    return [(str(k), str(v)) for k, v in conn.execute(
        "SELECT kind, value FROM identities WHERE profile_id = ? ORDER BY kind, value",
        (profile_id,),
    )]


def identified_profiles(conn: Connection, profile_ids: Iterable[int]) -> set[int]:
    """Which of these profiles hold an identity other than an anonymousId."""
    ids = list(set(profile_ids))
    out: set[int] = set()
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        out.update(int(r[0]) for r in conn.execute(
            f"SELECT DISTINCT profile_id FROM identities WHERE profile_id IN ({marks}) "
            "AND kind != 'anonymous_id'", chunk))
    return out


def find_profile(conn: Connection, value: str, kind: str | None = None) -> int | None:
    """The profile of an identity value, trying every kind (or just `kind`)."""
    for k in (kind,) if kind else KINDS:
        found = identity_profile(conn, k, value)
        if found is not None:
            return found
    return None


SEARCH_MATCHES = 1000
"""Identities a prefix search reads at most, in value order, before ordering their
profiles by last seen. A short prefix matches a share of every identity ("u1": 111,000
userIds of 1.2M, 0.39 s on a 10M-event database, growing with the customers); with the
cap a search costs the same at any size, and a prefix matching more says so."""


def search_identities(conn: Connection, prefix: str, limit: int,
                      matches: int | None = None) -> tuple[list[int], bool]:
    """Profiles with an identity starting with `prefix` (case-sensitive), seen most
    recently first, of the first `matches` (SEARCH_MATCHES) such identities in value
    order; and whether more identities match than were read."""
    matches = SEARCH_MATCHES if matches is None else matches
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found = [int(r[0]) for r in conn.execute(
        "SELECT profile_id FROM identities WHERE value >= ? AND value < ? "
        "AND value LIKE ? ESCAPE '\\' ORDER BY value LIMIT ?",
        (prefix, prefix + "\U0010ffff", escaped + "%", matches + 1))]
    more = len(found) > matches
    seen: dict[int, int | None] = {}
    for chunk in chunks(sorted(set(found[:matches])), 500):
        marks = ",".join("?" * len(chunk))
        seen.update((int(pid), None if last is None else int(last)) for pid, last in
                    conn.execute(f"SELECT id, last_seen FROM profiles WHERE id IN ({marks})",
                                 chunk))
    # Seen most recently first, never seen last; the newest profile first among equals.
    order = sorted(seen, key=lambda pid: (seen[pid] is not None, seen[pid] or 0, pid),
                   reverse=True)
    return order[:limit], more


def profiles_identities(conn: Connection,
                        profile_ids: Iterable[int]) -> dict[int, list[tuple[str, str]]]:
    """`profile_identities` for many profiles at once: {profile_id: [(kind, value)]}."""
    ids = sorted(set(profile_ids))
    out: dict[int, list[tuple[str, str]]] = {pid: [] for pid in ids}
    for chunk in chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for pid, kind, value in conn.execute(
                f"SELECT profile_id, kind, value FROM identities WHERE profile_id IN ({marks}) "
                "ORDER BY profile_id, kind, value", chunk):
            out[int(pid)].append((str(kind), str(value)))
    return out
