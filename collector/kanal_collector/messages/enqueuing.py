"""The enqueue API: one call, one outbox row; the same idempotency key never makes two.

Journeys (from inside the processor's transaction) and any other caller do:

    outbox_id = enqueue(conn, profile_id=42, message="cart_reminder",
                        channel="preferred", fallbacks=["email", "sms"],
                        idempotency_key=f"journey:cart:{run_id}:step:3",
                        kind="marketing", journey="cart", step="3")

It writes inside the caller's transaction and never commits. A person who can't get
the message on any candidate channel still gets a row, in state `skipped` with the
reason, so the caller's key is spent and `kanal outbox` shows why nothing went out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..store import outbox as store
from ..store.connection import Connection
from .catalog import Catalog
from .controls import row_controls
from .definition import MESSAGE_KINDS
from .eligibility import (
    NO_CONTENT,
    NO_PROFILE,
    NO_RECIPIENT,
    Policy,
    channel_info,
    check,
    load_person,
)

PREFERRED = "preferred"


def enqueue(
    conn: Connection,
    *,
    profile_id: int,
    message: str,
    channel: str,
    idempotency_key: str,
    kind: str,
    fallbacks: Sequence[str] = (),
    journey: str | None = None,
    step: str | None = None,
    send_at: float | datetime | None = None,
    data: Mapping[str, Any] | None = None,
    now: float | None = None,
    channels: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    policy: Policy | None = None,
    priority: int = 0,
    controls: Mapping[str, str] | None = None,
    untrusted: Sequence[str] = (),
) -> int:
    """Queue `message` for a profile; return the outbox id (the existing one for a key seen).

    `channel` is a channel name or "preferred" (the profile's preferred channel, when it
    is a channel here); the first candidate of [channel, *fallbacks] with a recipient,
    consent and subscription is chosen. `kind` is transactional or marketing (a message
    whose definition says marketing stays marketing). `send_at` (epoch seconds or an
    aware datetime) delays the send; `data` is what templates see as `data`. `channels`
    (Channel objects by name) and `catalog` sharpen the choice; without them the
    built-in channel names are assumed and any message name is accepted. `priority`
    (higher first) and `controls` (`{"quiet_hours": "defer" | "drop", "over_limit":
    "wait" | "skip"}`) are what the dispatcher's quiet hours, frequency caps and daily
    budget go by (messages/controls.py). `untrusted` names the keys of `data` that came
    from untrusted input (an event sent with a public key): a link they build must go to
    an allowed host (messages/linkguard.py).
    Runs in the caller's transaction; never commits.
    """
    if not isinstance(idempotency_key, str) or not idempotency_key:
        raise ValueError("idempotency_key must be a non-empty string")
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"kind must be transactional or marketing, not {kind!r}")
    if not isinstance(message, str) or not message:
        raise ValueError("message must be a message name")
    if not isinstance(channel, str) or not channel:
        raise ValueError("channel must be a channel name or 'preferred'")
    if isinstance(fallbacks, str):
        raise TypeError("fallbacks must be a list of channel names, not a string")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be a whole number, not {priority!r}")
    checked_controls = row_controls(controls)
    existing = store.by_key(conn, idempotency_key)
    if existing is not None:
        return existing.id

    now_s = time.time() if now is None else now
    now_ms = int(now_s * 1000)
    if send_at is None:
        due = now_ms
    elif isinstance(send_at, datetime):
        if send_at.tzinfo is None:
            raise ValueError("send_at must be an aware datetime (with a timezone)")
        due = int(send_at.timestamp() * 1000)
    else:
        due = int(float(send_at) * 1000)

    topic: str | None = None
    definition = None
    if catalog is not None:
        definition = catalog.get(message)
        topic = definition.topic
        if definition.kind == "marketing":
            kind = "marketing"
    policy = policy or Policy()

    person = load_person(conn, profile_id)
    candidates = _candidates(channel, fallbacks, person.computed if person else {}, channels)
    unknown = [c for c in candidates if channel_info(c, channels) is None]
    if unknown:
        raise ValueError(f"no channel named {', '.join(unknown)}")

    chosen: str | None = None
    reason: str | None = NO_PROFILE if person is None else None
    if person is not None:
        first_reason = None
        for name in candidates:
            info = channel_info(name, channels)
            assert info is not None
            if definition is not None and not definition.has_content(info.kind):
                why: str | None = NO_CONTENT
            else:
                _, why = check(conn, person, info, kind=kind, topic=topic, policy=policy)
            if why is None:
                chosen = name
                break
            first_reason = first_reason or why
        if chosen is None:
            reason = first_reason or NO_RECIPIENT
    row = store.NewRow(
        idempotency_key=idempotency_key,
        profile_id=person.profile_id if person else profile_id,
        message=message, kind=kind, topic=topic,
        channel=chosen or (candidates[0] if candidates else None),
        candidates=candidates, journey=journey, step=step, data=dict(data or {}),
        state="queued" if chosen else "skipped", reason=reason,
        next_attempt_at=due, now=now_ms, priority=priority, controls=checked_controls,
        untrusted=[k for k in untrusted if k in (data or {})],
    )
    outbox_id, _ = store.insert(conn, row)
    return outbox_id


def enqueue_failed(conn: Connection, *, profile_id: int, message: str,
                   channel: str | None, idempotency_key: str, kind: str, reason: str,
                   now: float, journey: str | None = None, step: str | None = None) -> int:
    """Write the row of a send that could not be queued, as `failed` with the reason.

    A journey whose channel or message is gone (a config or a file changed after the
    journey was loaded) must not send nothing silently: `kanal outbox` and `kanal
    journeys why` show the row. The same key never makes a second row.
    """
    now_ms = int(now * 1000)
    row = store.NewRow(
        idempotency_key=idempotency_key, profile_id=profile_id, message=message,
        kind=kind if kind in MESSAGE_KINDS else "marketing", topic=None, channel=channel,
        candidates=[channel] if channel else [], journey=journey, step=step, data={},
        state="failed", reason=reason, next_attempt_at=now_ms, now=now_ms)
    outbox_id, _ = store.insert(conn, row)
    return outbox_id


def _candidates(channel: str, fallbacks: Sequence[str], computed: Mapping[str, Any],
                channels: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    if channel == PREFERRED:
        preferred = computed.get("preferredChannel")
        if isinstance(preferred, str) and channel_info(preferred, channels) is not None:
            out.append(preferred)
    else:
        out.append(channel)
    for name in fallbacks:
        if name != PREFERRED and name not in out:
            out.append(name)
    return out
