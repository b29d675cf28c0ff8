"""`kanal forget`: delete a person and keep a suppression record; the keyed hashes."""

from __future__ import annotations

from dataclasses import dataclass

from ..contacts import normalise_email, normalise_phone
from ..store import audiences, deliverability, journeys, outbox
from ..store import identities as identity_store
from ..store import privacy as privacy_store
from ..store import profiles as profile_store
from ..store.connection import Connection
from ..store.db import transaction
from .step import identity_hash
from .views import lookup


@dataclass(frozen=True)
class Forgotten:
    """What `forget` did."""

    profile_id: int | None
    identities: list[tuple[str, str]]
    events_deleted: int


def forget(conn: Connection, value: str, now_ms: int, *,
           kind: str | None = None, profile_id: int | None = None) -> Forgotten:
    """Delete the person known by `value` (any identity) and suppress their identities.

    `profile_id` names the person directly instead (the dashboard's person page), and
    `value` is then only what the messages say.

    Later events carrying any of those identities are dropped (and deleted from the log)
    by the processor and by `profiles rebuild`. A value that matches no profile is
    suppressed all the same, so a person can be forgotten before they are seen.
    """
    if not value.strip() and profile_id is None:
        raise ValueError("USER must not be empty")
    # The log is read for the person's events before the write lock (on SQLite): ingest
    # waits for the deletion only, not for a read of every event stored.
    found = lookup(conn, value, kind) if profile_id is None else profile_id
    logged = None if found is None else privacy_store.read_logged_events(conn, found)
    with transaction(conn):
        if profile_id is None:
            profile_id = lookup(conn, value, kind)
        elif profile_store.profile_row(conn, profile_id) is None:
            raise ValueError(f"no profile {profile_id}")
        if profile_id is not None:
            identities = identity_store.profile_identities(conn, profile_id)
            deleted = privacy_store.delete_profile(conn, profile_id, logged=logged)
            outbox.delete_profile_rows(conn, profile_id)
            journeys.delete_profile_runs(conn, profile_id)
            # Ads audiences: the person leaves every one; the platform hashes are kept
            # only until each removal is acknowledged (audiences/sync.py).
            audiences.forget_profile(conn, profile_id, now_ms)
        else:
            identities = _guess(value.strip(), kind)
            deleted = 0
        # Bounce and complaint reports name the address; the suppression list keeps it
        # (that is what stops mail to it) and so do the anonymous daily counts.
        deliverability.delete_feedback_of(conn, [v for k, v in identities if k == "email"])
        secret = privacy_store.suppression_secret(conn)
        privacy_store.add_suppressions(conn, [identity_hash(secret, k, v) for k, v in identities],
                               now_ms)
    return Forgotten(profile_id, identities, deleted)


def _guess(value: str, kind: str | None) -> list[tuple[str, str]]:
    if kind is not None:
        return [(kind, value)]
    out = [("user_id", value)]
    if email := normalise_email(value):
        out.append(("email", email))
    if phone := normalise_phone(value):
        out.append(("phone", phone))
    return out


def is_suppressed(conn: Connection, kind: str, value: str) -> bool:
    """True when this identity was forgotten."""
    secret = privacy_store.suppression_secret(conn)
    return bool(privacy_store.suppressed(conn, [identity_hash(secret, kind, value)]))
