"""Delivery outcomes as events in the log ("Email Delivered", "Email Bounced", …).

Written by the dispatcher in the transaction that records the outcome, with key_kind
"kanal" (Kanal's own events: they go on the profile's timeline and change nothing
else), the origin of the channel's kind, and the outbox id, message, journey and
channel as properties. The message id is derived from the outbox id and outcome, so a
repeated recording can't add a second event.
"""

from __future__ import annotations

from typing import Any

from ..own_events import own_event
from ..store.events import EventRow
from ..store.outbox import OutboxRow

SMS_DELIVERED = "SMS Delivered"  # the carrier's report; "SMS Sent" is the send-time event

# Channel kind → (event when the provider accepted it, event when it refused it).
# Email uses Segment's email event names.
EVENT_NAMES: dict[str, tuple[str, str]] = {
    "email": ("Email Delivered", "Email Bounced"),
    # The provider accepted it; delivery itself is reported later by its callback
    # ("SMS Delivered", see callbacks.py), where the provider has one.
    "sms": ("SMS Sent", "SMS Failed"),
    "push": ("Push Notification Sent", "Push Notification Bounced"),
    "webhook": ("Webhook Delivered", "Webhook Failed"),
    "console": ("Message Delivered", "Message Failed"),
    # Handed to the person's browser by the snippet's pull (onsite/pull.py).
    "onsite": ("On-site Message Delivered", "On-site Message Failed"),
}
_ORIGINS = {"email": "email", "sms": "sms", "push": "push", "onsite": "web"}


def outbox_event(row: OutboxRow, *, name: str, message_id: str, origin: str,
                 properties: dict[str, Any], identities: list[tuple[str, str]],
                 source_id: int, now_ms: int) -> EventRow:
    """A Kanal event about an outbox row, on its person (userId/anonymousId from
    `identities`); properties without a value are left out."""
    return own_event(
        name=name, message_id=message_id, origin=origin,
        properties={k: v for k, v in properties.items() if v is not None},
        user_id=next((v for k, v in identities if k == "user_id"), None),
        anonymous_id=next((v for k, v in identities if k == "anonymous_id"), None),
        source_id=source_id, now_ms=now_ms)


def delivery_event(row: OutboxRow, *, channel_kind: str, delivered: bool, source_id: int,
                   identities: list[tuple[str, str]], now_ms: int,
                   detail: dict[str, Any]) -> EventRow:
    """The event that records a row's outcome (sent, or failed permanently)."""
    good, bad = EVENT_NAMES.get(channel_kind, EVENT_NAMES["console"])
    properties: dict[str, Any] = {
        "outbox_id": row.id, "message": row.message, "journey": row.journey,
        "step": row.step, "channel": row.channel, "kind": row.kind,
        "profile_id": row.profile_id, **detail,
    }
    if channel_kind == "email":
        properties["email_subject"] = detail.get("email_subject")
        properties["email_id"] = str(row.id)
    return outbox_event(
        row, name=good if delivered else bad,
        message_id=f"kanal-outbox-{row.id}-{'delivered' if delivered else 'failed'}",
        origin=_ORIGINS.get(channel_kind, "server"), properties=properties,
        identities=identities, source_id=source_id, now_ms=now_ms)
