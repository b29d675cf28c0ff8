"""Signed, expiring tokens of the on-site routes (what the server said, handed back).

A token is base64url(JSON payload) "." base64url(HMAC-SHA256, 128 bits) under a random
per-database key (`meta.onsite_key`), with its purpose and issue time inside the signed
payload. The pull answer signs each message it hands out (what the browser may then
report as shown, clicked or submitted), sign-up forms carry one (the timing check), and
the snippet's confirmation call carries the one the confirmation link had.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

from ..store import meta
from ..store.connection import Connection

_KEY = "onsite_key"
_SIG = 16
MAX_TOKEN = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(conn: Connection) -> bytes:
    """The database's on-site key, made on first use."""
    found = meta.get(conn, _KEY) or meta.put_new(conn, _KEY, secrets.token_hex(32))
    return bytes.fromhex(found)


def sign(key: bytes, purpose: str, now_ms: int, payload: dict[str, Any]) -> str:
    """A token for `purpose` carrying `payload`, issued at `now_ms`."""
    body = json.dumps({"p": purpose, "t": now_ms, **payload}, separators=(",", ":"),
                      sort_keys=True, ensure_ascii=False).encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_SIG]
    return f"{_b64(body)}.{_b64(mac)}"


def read(key: bytes, token: Any, purpose: str, *, now_ms: int,
         max_age_ms: int) -> dict[str, Any] | None:
    """The payload of a valid token for `purpose` issued at most `max_age_ms` ago (and
    not in the future), else None; never raises (tokens come from strangers)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 1:
        return None
    body_text, mac_text = token.split(".")
    try:
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling (base64 has spare bits in its last character): one
    # ticket, one text — events are keyed by it.
    if _b64(body) != body_text or _b64(mac) != mac_text:
        return None
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest()[:_SIG], mac):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("p") != purpose:
        return None
    issued = payload.get("t")
    if not isinstance(issued, int) or not 0 <= now_ms - issued <= max_age_ms:
        return None
    return payload
