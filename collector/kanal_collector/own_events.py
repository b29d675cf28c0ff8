"""Events Kanal writes itself (deliveries, provider callbacks, email tracking).

They have key_kind "kanal", so the processor puts them on the person's timeline and
applies only what it knows of them, and carry the person's userId and/or anonymousId.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .clock import utc_iso
from .profiles.step import KANAL_KEY_KIND
from .store.events import EventRow, event_row


def own_event(*, name: str, message_id: str, origin: str, properties: Mapping[str, Any],
              user_id: str | None, anonymous_id: str | None, source_id: int, now_ms: int,
              context: Mapping[str, Any] | None = None) -> EventRow:
    """A track event of Kanal's own, ready to append to the log."""
    iso = utc_iso(now_ms / 1000)
    body: dict[str, Any] = {
        "type": "track", "event": name, "messageId": message_id,
        "properties": dict(properties), "timestamp": iso, "receivedAt": iso,
        "context": dict(context) if context else {"library": {"name": "kanal"}},
    }
    if user_id:
        body["userId"] = user_id
    if anonymous_id:
        body["anonymousId"] = anonymous_id
    return event_row(source_id, message_id, "track", name, user_id, anonymous_id, origin,
                     KANAL_KEY_KIND, 1, now_ms, now_ms, body, _dumps)


def _dumps(body: dict[str, Any]) -> str:
    """The JSON of a body as this writer has always stored it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
