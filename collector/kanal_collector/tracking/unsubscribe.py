"""Unsubscribing a person from all marketing email: one function for every path.

A spam complaint (a provider's feedback loop, an ARF report) means "stop": the person
is unsubscribed from every marketing send of every email-kind channel, whatever the
message's topic. The RFC 8058 one-click POST means the same (issue 13), so both build
their event here. Subscriptions are per channel name *or* kind (eligibility.check looks
up both), so `channel: "email"` without a topic covers every email-kind channel
(`[channels.marketing] type = "email"` included). Transactional email is unaffected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..store.connection import Connection
from ..store.events import EventRow
from .events import UNSUBSCRIBED, email_event

ALL_EMAIL = "email"
"""The subscription key of all marketing email, on every email-kind channel."""
SCOPE_ALL_MARKETING_EMAIL = "all_marketing_email"


def unsubscribe_all_email(conn: Connection, *, profile_id: int, via: str,
                          now_ms: int, properties: Mapping[str, Any] | None = None,
                          user_agent: str | None = None) -> EventRow | None:
    """The `Unsubscribed` event that stops all marketing email to a person.

    `properties` describe the send it came from (outbox_id, message, journey, …); the
    send's own channel is kept as `send_channel`. None when there is no source yet.
    """
    props: dict[str, Any] = dict(properties or {})
    if "channel" in props:
        props["send_channel"] = props.pop("channel")
    props.update(channel=ALL_EMAIL, topic=None, scope=SCOPE_ALL_MARKETING_EMAIL, via=via)
    return email_event(conn, UNSUBSCRIBED, profile_id=profile_id, properties=props,
                       now_ms=now_ms, user_agent=user_agent)
