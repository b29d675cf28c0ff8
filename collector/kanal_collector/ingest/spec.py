"""The Segment Spec: validate one message and put it in normal form.

Unknown fields are kept. Only what the rest of Kanal relies on is checked: the type,
an identity, the fields a type needs, the types of the common objects, timestamps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group",
               "a": "alias"}
_OBJECT_FIELDS = ("context", "properties", "traits", "integrations")
_MAX_ID = 255
_MAX_NAME = 255


class InvalidMessage(ValueError):
    """One message breaks the spec; the text says which field and why."""


def parse_time(value: Any, field: str) -> float | None:
    """An ISO 8601 timestamp as epoch seconds (naive times are UTC); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidMessage(f"{field} must be an ISO 8601 string")
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidMessage(f"{field} is not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1970 <= parsed.year <= 9999:
        raise InvalidMessage(f"{field} is out of range")
    return parsed.timestamp()


def _id(msg: dict[str, Any], field: str) -> str | None:
    """A string id; numbers are accepted and turned into strings, like Segment does."""
    value = msg.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidMessage(f"{field} must be a string")
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_ID:
        raise InvalidMessage(f"{field} is longer than {_MAX_ID} characters")
    if text == "":
        return None
    msg[field] = text
    return text


def normalize(
    msg: Any,
    *,
    expected_type: str | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_integrations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate `msg` (changed in place) and return it; raise InvalidMessage.

    `expected_type` is the type a single-event route implies; batch items carry their own.
    Batch-level context and integrations fill in what an item does not set itself.
    """
    if not isinstance(msg, dict):
        raise InvalidMessage("a message must be a JSON object")
    kind = msg.get("type")
    if expected_type is not None:
        if kind is None:
            kind = msg["type"] = expected_type
        elif kind != expected_type:
            raise InvalidMessage(f"type {kind!r} sent to the {expected_type} route")
    if not isinstance(kind, str) or kind not in TYPES:
        raise InvalidMessage(
            "type must be one of " + ", ".join(sorted(TYPES)) + f", not {str(kind)[:40]!r}"
        )
    for field in _OBJECT_FIELDS:
        value = msg.get(field)
        if value is not None and not isinstance(value, dict):
            raise InvalidMessage(f"{field} must be an object")
    if batch_context:
        msg["context"] = {**batch_context, **(msg.get("context") or {})}
    if batch_integrations:
        msg["integrations"] = {**batch_integrations, **(msg.get("integrations") or {})}

    user_id = _id(msg, "userId")
    anonymous_id = _id(msg, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidMessage("userId or anonymousId is required")
    if kind == "track":
        event = msg.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidMessage("track needs an event name (event)")
        if len(event) > _MAX_NAME:
            raise InvalidMessage(f"event is longer than {_MAX_NAME} characters")
    elif kind in ("page", "screen"):
        for field in ("name", "category"):
            value = msg.get(field)
            if value is not None and not isinstance(value, str):
                raise InvalidMessage(f"{field} must be a string")
    elif kind == "group":
        if _id(msg, "groupId") is None:
            raise InvalidMessage("group needs a groupId")
    elif kind == "alias":
        if _id(msg, "previousId") is None:
            raise InvalidMessage("alias needs a previousId")
        if user_id is None:
            raise InvalidMessage("alias needs a userId")

    message_id = msg.get("messageId")
    if message_id is None or message_id == "":
        msg["messageId"] = str(uuid.uuid4())
    elif not isinstance(message_id, str) or len(message_id) > _MAX_ID:
        raise InvalidMessage(f"messageId must be a string of at most {_MAX_ID} characters")
    return msg
