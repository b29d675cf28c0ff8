"""The Segment Spec: validate one message and put it in normal form.

Unknown fields are kept. Only what the rest of Kanal relies on is checked: the type,
an identity, the fields a type needs, the types of the common objects, timestamps.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
SHORT_PATHS = {"t": "track", "i": "identify", "p": "page", "s": "screen", "g": "group",
               "a": "alias"}
_OBJECT_FIELDS = ("context", "properties", "traits", "integrations")
_MAX_ID = 255
_NUL = "\x00"
"""Never in an id or an event name: they are columns, and PostgreSQL's text can't hold it
(the body keeps any string, escaped as JSON)."""
_MAX_NAME = 255


class InvalidMessage(ValueError):
    """One message breaks the spec; the text says which field and why."""


def parse_time(value: Any, field: str) -> float | None:
    """An ISO 8601 timestamp as epoch seconds (naive times are UTC); None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidMessage(f"{field} must be an ISO 8601 string")
    seconds = _seconds(value) if len(value) <= _MAX_CACHED_TIME else _parse_seconds(value)
    if isinstance(seconds, float):
        return seconds
    if seconds == _OUT_OF_RANGE:
        raise InvalidMessage(f"{field} is out of range")
    raise InvalidMessage(f"{field} is not an ISO 8601 timestamp: {value[:40]!r}")


_NOT_ISO = "not ISO 8601"
_OUT_OF_RANGE = "out of range"
# A batch's messages share their sentAt, and clients send the same instants again.
_MAX_CACHED_TIME = 40


def _parse_seconds(value: str) -> float | str:
    """Epoch seconds of an ISO 8601 text, or why not (_NOT_ISO, _OUT_OF_RANGE)."""
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return _NOT_ISO
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1970 <= parsed.year <= 9999:
        return _OUT_OF_RANGE
    return parsed.timestamp()


_seconds = lru_cache(maxsize=4096)(_parse_seconds)


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
    if _NUL in text:
        raise InvalidMessage(f"{field} holds a NUL character (U+0000)")
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
    get = msg.get
    for field in _OBJECT_FIELDS:
        value = get(field)
        if value is not None and not isinstance(value, dict):
            raise InvalidMessage(f"{field} must be an object")
    if batch_context:
        msg["context"] = {**batch_context, **(get("context") or {})}
    if batch_integrations:
        msg["integrations"] = {**batch_integrations, **(get("integrations") or {})}

    # The common case inline: an id that is already a string of an allowed length.
    user_id = get("userId")
    if type(user_id) is not str or not 0 < len(user_id) <= _MAX_ID or _NUL in user_id:
        user_id = _id(msg, "userId")
    anonymous_id = get("anonymousId")
    if (type(anonymous_id) is not str or not 0 < len(anonymous_id) <= _MAX_ID
            or _NUL in anonymous_id):
        anonymous_id = _id(msg, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise InvalidMessage("userId or anonymousId is required")
    if kind == "track":
        event = msg.get("event")
        if not isinstance(event, str) or not event.strip():
            raise InvalidMessage("track needs an event name (event)")
        if len(event) > _MAX_NAME:
            raise InvalidMessage(f"event is longer than {_MAX_NAME} characters")
        if _NUL in event:
            raise InvalidMessage("event holds a NUL character (U+0000)")
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
    elif _NUL in message_id:
        raise InvalidMessage("messageId holds a NUL character (U+0000)")
    return msg
