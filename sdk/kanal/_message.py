"""Building messages: argument checks, a cheap safe copy, ids, timestamps, JSON encoding.

The calling thread does only what must happen before a call returns (check, copy, stamp
raw id and time); formatting and JSON encoding happen on the consumer thread, where the
32 KB limit is measured on the exact bytes that are sent.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import functools
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._version import __version__

#: The collector's limits (Segment's HTTP Tracking API).
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
#: Payload budget per batch: under MAX_BATCH_BYTES with room for the envelope and sentAt.
BATCH_PAYLOAD_BUDGET = 475_000

LIBRARY: dict[str, str] = {"name": "kanal-python", "version": __version__}
#: Shared by every message sent without a context; never mutated.
DEFAULT_CONTEXT: dict[str, Any] = {"library": LIBRARY}

Message = dict[str, Any]

_SCALARS = frozenset({str, int, float, bool, type(None)})
_INT64 = 2**63

# A private generator: an application that seeds `random` for its own tests must not make
# our message ids repeat (the collector dedupes on messageId). Reseeded in forked children.
_rng = random.Random()
#: 128 random bits, formatted as a UUID 4 by the consumer.
rand128: Callable[[], int] = functools.partial(_rng.getrandbits, 128)
time_ns = time.time_ns


def reseed() -> None:
    """Give this process its own id sequence (called in a child after fork)."""
    _rng.seed()


# --- argument checks (run in the caller; they may raise) ---------------------------------


def check_id(value: object, name: str, where: str) -> str:
    """An id as the Segment spec wants it: a non-empty string (ints are accepted)."""
    if type(value) is str:
        if value:
            return value
        raise ValueError(f"{where}: {name} must not be empty")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return check_id(str(value), name, where)
    raise TypeError(f"{where}: {name} must be a str or int, not {type(value).__name__}")


def check_who(msg: Message, user_id: object, anonymous_id: object, where: str) -> None:
    """Every message needs userId or anonymousId."""
    if user_id is None and anonymous_id is None:
        raise ValueError(f"{where}: user_id or anonymous_id is required")
    if user_id is not None:
        msg["userId"] = check_id(user_id, "user_id", where)
    if anonymous_id is not None:
        msg["anonymousId"] = check_id(anonymous_id, "anonymous_id", where)


def check_name(value: object, name: str, where: str) -> str:
    """A required non-empty string such as an event name."""
    if type(value) is str and value:
        return value
    if value is None or value == "":
        raise ValueError(f"{where}: {name} is required")
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str, not {type(value).__name__}")
    return str(value)


def copy_dict(value: object, name: str, where: str) -> dict[str, Any]:
    """A deep, JSON-ready copy of a caller's mapping; a later change by the caller is not seen.

    Much cheaper than `copy.deepcopy`: immutable scalars are shared, containers are rebuilt,
    and anything else is converted now (datetimes to ISO 8601, Decimal to float, ...), so
    the caller's mutable objects are never referenced by the queued event. Keys are left to
    the encoder (non-string keys become strings there).
    """
    if type(value) is dict:
        out = value.copy()
    elif isinstance(value, Mapping):
        out = dict(value)
    else:
        raise TypeError(f"{where}: {name} must be a dict, not {type(value).__name__}")
    scalars = _SCALARS
    for key, item in out.items():
        if type(item) not in scalars:
            out[key] = _copy(item, 1)  # replacing a value while iterating is safe
    return out


def _copy(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth > 30:  # the collector refuses nesting deeper than 32
        return str(value)
    scalars = _SCALARS
    if kind is dict:
        out = value.copy()
        for key, item in out.items():
            if type(item) not in scalars:
                out[key] = _copy(item, depth + 1)
        return out
    if kind is list or kind is tuple:
        items = list(value)
        for i, item in enumerate(items):
            if type(item) not in scalars:
                items[i] = _copy(item, depth + 1)
        return items
    if isinstance(value, Mapping):
        return _copy(dict(value), depth)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _copy(list(value), depth)
    return convert(value)


def _key(key: object) -> str:
    if isinstance(key, enum.Enum):
        return str(key.value)
    return str(key)


def convert(value: Any) -> Any:
    """Turn a non-JSON value into the JSON value the collector should see."""
    if isinstance(value, enum.Enum):
        return convert(value.value) if type(value.value) not in _SCALARS else value.value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, _dt.datetime):
        return iso_datetime(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def iso_datetime(value: _dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    else:
        value = value.astimezone(_dt.UTC)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_timestamp(value: object, where: str) -> str:
    """A caller's `timestamp=`: a datetime (naive means UTC) or an ISO 8601 string."""
    if isinstance(value, _dt.datetime):
        return iso_datetime(value)
    if isinstance(value, str):
        try:
            return iso_datetime(_dt.datetime.fromisoformat(value))
        except ValueError:
            raise ValueError(f"{where}: timestamp is not ISO 8601: {value!r}") from None
    raise TypeError(f"{where}: timestamp must be a datetime, not {type(value).__name__}")


# --- formatting and encoding (consumer thread) --------------------------------------------


def format_uuid4(bits: int) -> str:
    """A random 128-bit int as a version 4, RFC 4122 variant UUID string."""
    bits = (bits & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_ts_cache: tuple[int, str] = (-1, "")


def format_ns(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC with milliseconds."""
    global _ts_cache
    ms = ns // 1_000_000
    sec, frac = divmod(ms, 1000)
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)  # one tuple, swapped atomically
    return f"{prefix}.{frac:03d}Z"


def now_iso() -> str:
    """The current time as ISO 8601 UTC."""
    return format_ns(time_ns())


def finalize(msg: Message) -> Message:
    """Turn the raw id and clock reading stamped by the caller into their wire form."""
    mid = msg["messageId"]
    if type(mid) is int:
        msg["messageId"] = format_uuid4(mid)
    ts = msg["timestamp"]
    if type(ts) is int:
        msg["timestamp"] = format_ns(ts)
    return msg


def _make_encoder() -> Callable[[Any], str]:
    encoder = json.JSONEncoder(
        ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=convert
    )
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has it
        return encoder.encode
    # JSONEncoder.encode builds this C encoder anew on every call; build it once. No
    # circular-reference markers: messages are trees we copied ourselves.
    c_encode = c_make_encoder(
        None, convert, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(c_encode(value, 0))

    return encode


_encode = _make_encoder()


def encode(msg: Message) -> bytes:
    """The message as compact UTF-8 JSON the collector accepts.

    The fast path is the C encoder; a value it cannot take as is (NaN, a lone surrogate, an
    integer beyond int64) sends the message through `sanitize` instead of failing the batch.
    """
    try:
        return _encode(msg).encode("utf-8")
    except (ValueError, TypeError, UnicodeEncodeError, RecursionError):
        return _encode(sanitize(msg)).encode("utf-8")


def sanitize(value: Any) -> Any:
    """A copy with every value the collector would refuse replaced: NaN and infinities by
    null, integers beyond int64 by strings, lone surrogates by '?'."""
    kind = type(value)
    if kind is float or isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if kind is str or isinstance(value, str):
        return str(value).encode("utf-8", "replace").decode("utf-8")
    if kind is bool or value is None:
        return value
    if isinstance(value, int):
        return int(value) if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, Mapping):
        return {sanitize(_key(k) if type(k) is not str else k): sanitize(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [sanitize(v) for v in value]
    return sanitize(convert(value))
