"""Opens, clicks, unsubscribes and preference changes as events of the log.

Names follow Segment's email events; the events are Kanal's own (origin `email`,
key_kind `kanal`), filed under the oldest source like the other events Kanal writes,
and carry the profile's userId (or an anonymousId) so the processor puts them on its
timeline. Journeys must skip events whose `properties.bot` is true.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..own_events import own_event
from ..store import identities as identity_store
from ..store import profiles as profile_store
from ..store.connection import Connection
from ..store.db import transaction
from ..store.events import EventRow, append_events

EMAIL_OPENED = "Email Opened"
EMAIL_LINK_CLICKED = "Email Link Clicked"
UNSUBSCRIBED = "Unsubscribed"
SUBSCRIBED = "Subscribed"
PUSH_CLICKED = "Push Notification Clicked"
"""A click on a web push notification (its URL is a tracked link, onsite/pushclick.py)."""
ORIGIN = "email"
KEY_KIND = "kanal"
"""key_kind of the events Kanal writes itself (profiles.step.KANAL_KEY_KIND)."""


def profile_ids(conn: Connection, profile_id: int) -> tuple[int, str | None, str | None]:
    """(current profile id, userId, anonymousId) of a profile, following merges."""
    current = profile_store.merged_into(conn, profile_id) or profile_id
    idents = identity_store.profile_identities(conn, current)
    user_id = next((v for k, v in idents if k == "user_id"), None)
    anonymous_id = next((v for k, v in idents if k == "anonymous_id"), None)
    return current, user_id, anonymous_id


def email_event(conn: Connection, name: str, *, profile_id: int,
                properties: Mapping[str, Any], now_ms: int,
                user_agent: str | None = None, origin: str | None = None) -> EventRow | None:
    """One track event of `name` for a profile; None when the database has no source
    yet (there is nowhere to file it)."""
    source = profile_store.first_source(conn)
    if source is None:
        return None
    current, user_id, anonymous_id = profile_ids(conn, profile_id)
    if user_id is None and anonymous_id is None:
        # Segment needs one of the two; this one is no identity of the profile, so the
        # event stays off its timeline (properties.profile_id still names it).
        anonymous_id = f"kanal-profile-{current}"
    message_id = f"kanal-email-{uuid.uuid4().hex}"
    context: dict[str, Any] = {"library": {"name": "kanal"}}
    if user_agent:
        context["userAgent"] = user_agent
    return own_event(name=name, message_id=message_id, origin=origin or ORIGIN,
                     properties={**properties, "profile_id": current}, user_id=user_id,
                     anonymous_id=anonymous_id, source_id=source, now_ms=now_ms,
                     context=context)


def append(conn: Connection, rows: Sequence[EventRow | None]) -> int:
    """Append the rows in one write transaction (outside a request: CLI, tests)."""
    kept = [r for r in rows if r is not None]
    if not kept:
        return 0
    with transaction(conn):
        return append_events(conn, kept)
