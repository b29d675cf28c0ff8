"""Signed tokens for tracking URLs: base64url(purpose, ids) + truncated HMAC-SHA256.

A token names what it is for (a click on link N of outbox row X, an open of X, an
unsubscribe from X, the preference page of profile P) and nothing else: the URL a
click goes to is looked up from the database, never read from the request, so a
forged or altered token can only be refused. Tokens are signed with the newest key
and verified with every key still kept (rotation), comparing in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# The purpose byte is signed with the ids, so a token made for one route can't be
# replayed on another (an open token is not an unsubscribe token).
CLICK = 1
OPEN = 2
UNSUBSCRIBE = 3
PREFERENCES = 4
_PURPOSES = frozenset({CLICK, OPEN, UNSUBSCRIBE, PREFERENCES})
_SIG_BYTES = 16  # 128 bits of HMAC-SHA256: far beyond guessing, and shorter links
_ID = struct.Struct(">BQ")
_INDEX = struct.Struct(">H")
MAX_LINKS = 0xFFFF
"""Links per email that can be tracked (the index is two bytes)."""


@dataclass(frozen=True, slots=True)
class Token:
    """What a verified token names: its purpose, an outbox or profile id, a link index."""

    purpose: int
    id: int
    index: int | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_SIG_BYTES]


def make_token(key: bytes, purpose: int, id: int, index: int | None = None) -> str:
    """A token for `purpose` naming `id` (and link `index` for clicks), signed by `key`."""
    if purpose not in _PURPOSES:
        raise ValueError(f"purpose: unknown token purpose {purpose!r}")
    if not 0 <= id < 2**63:
        raise ValueError(f"id: must be a non-negative 64-bit integer, not {id!r}")
    if (purpose == CLICK) != (index is not None):
        raise ValueError("index: needed for click tokens and only for them")
    payload = _ID.pack(purpose, id)
    if index is not None:
        if not 0 <= index <= MAX_LINKS:
            raise ValueError(f"index: must be 0-{MAX_LINKS}, not {index!r}")
        payload += _INDEX.pack(index)
    return _b64(payload + _sign(key, payload))


def _decode(token: str, purpose: int) -> bytes | None:
    if not token or len(token) > 64 or not token.isascii():
        return None
    try:
        raw = _unb64(token)
    except (binascii.Error, ValueError):
        return None
    want = _ID.size + (_INDEX.size if purpose == CLICK else 0) + _SIG_BYTES
    if len(raw) != want or raw[0] != purpose:
        return None
    # Only the canonical spelling is accepted (base64 has spare bits in its last char).
    return raw if _b64(raw) == token else None


def well_formed(token: str, purpose: int) -> bool:
    """Whether a token has the shape of one for `purpose` (its signature unchecked)."""
    return _decode(token, purpose) is not None


def read_token(keys: Sequence[bytes], token: str, purpose: int) -> Token | None:
    """The token's contents if it is well formed, for `purpose`, and signed by one of
    `keys`; otherwise None (never an exception: tokens come from strangers)."""
    raw = _decode(token, purpose)
    if raw is None:
        return None
    payload, signature = raw[:-_SIG_BYTES], raw[-_SIG_BYTES:]
    valid = False
    for key in keys:
        # Every key is tried, whatever matched, so timing says nothing about which.
        valid |= hmac.compare_digest(_sign(key, payload), signature)
    if not valid:
        return None
    _, ident = _ID.unpack_from(payload)
    index = _INDEX.unpack_from(payload, _ID.size)[0] if purpose == CLICK else None
    return Token(purpose, ident, index)
