"""VERP bounce addresses: `bounces+<token>@bounce.shop.example`, one per outbox row.

The token is the outbox id (base 36) and a MAC over that id and the address the row was
sent to (HMAC-SHA256 under the tracking keys, 80 bits, base 32 in lower case: mail
servers may change the case of a local part). So a bounce to it names its row, and
nobody can make one for a row, or an address, they were not sent: a recipient sees
only their own bounce address, and it can only ever bounce themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

_MAC_BYTES = 10
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if not n:
            return out


def _mac(key: bytes, outbox_id: int, recipient: str) -> str:
    data = f"kanal-verp\0{outbox_id}\0{recipient.strip().lower()}".encode()
    digest = hmac.new(key, data, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower().rstrip("=")


def bounce_address(local: str, domain: str, key: bytes, outbox_id: int,
                   recipient: str) -> str:
    """The envelope sender of an outbox row sent to `recipient`."""
    if outbox_id < 0:
        raise ValueError("outbox_id must not be negative")
    return f"{local}+{_base36(outbox_id)}-{_mac(key, outbox_id, recipient)}@{domain}"


@dataclass(frozen=True)
class Parsed:
    """What a bounce address names (its MAC still to be checked against the row)."""

    outbox_id: int
    mac: str


def parse(address: str, local: str, domain: str) -> Parsed | None:
    """The outbox id and MAC of one of our bounce addresses, or None (never raises)."""
    text = address.strip().strip("<>").lower()
    if text.count("@") != 1:
        return None
    left, right = text.split("@")
    prefix = f"{local}+"
    if right != domain or not left.startswith(prefix):
        return None
    number, sep, mac = left[len(prefix):].partition("-")
    if (not sep or not number or len(number) > 13 or any(c not in _DIGITS for c in number)
            or len(mac) != 16):
        return None
    return Parsed(int(number, 36), mac)


def verify(keys: Sequence[bytes], parsed: Parsed, recipient: str) -> bool:
    """Whether the MAC is ours for this row and the address it was sent to."""
    ok = False
    for key in keys:  # every key, whatever matched: timing says nothing
        ok |= hmac.compare_digest(_mac(key, parsed.outbox_id, recipient), parsed.mac)
    return ok
