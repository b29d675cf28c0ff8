"""Email header values Kanal writes: never a line break, however it is spelled.

A header value may hide a line break as an RFC 2047 encoded word:
`=?utf-8?q?Ann=0D=0ABcc:_x@evil.example?=` (or base64, `=?utf-8?b?…?=`) reads as plain
text, but Python's email package decodes encoded words while it parses a header and,
on interpreters without the CVE-2024-6923 fix (3.11.7, for one), writes the decoded CR
LF out as a real line break: an extra Bcc, From or Reply-To header. Kanal doesn't lean
on the interpreter's patch level: it decodes encoded words itself — more leniently
than any parser would (any charset, Q or B, whitespace inside, padding missing, encoded
words inside encoded words) — and refuses a value whose raw or decoded text holds a
line break or another control character.
"""

from __future__ import annotations

import base64
import binascii
import re

_ENCODED_WORD = re.compile(r"=\?([^?]*)\?([bBqQ])\?(.*?)\?=", re.DOTALL)
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_MAX_ROUNDS = 8
# Line and paragraph separators str.splitlines() (and so parts of the email package)
# split on, besides the C0/C1 control characters.
_SEPARATORS = frozenset("\u2028\u2029")


def _q_bytes(text: str) -> bytes:
    raw = text.replace("_", " ").encode("latin-1", errors="replace")
    return _Q_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _b_bytes(text: str) -> bytes:
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return b""


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, text = match.group(1), match.group(2).upper(), match.group(3)
    raw = _q_bytes(text) if encoding == "Q" else _b_bytes(text)
    charset = charset.split("*", 1)[0].strip() or "ascii"  # RFC 2231 language suffix
    try:
        decoded = raw.decode(charset, errors="replace")
    except LookupError:
        decoded = raw.decode("latin-1")
    # Whatever the charset says, the raw bytes of CR, LF or NUL are there: keep them
    # visible (a UTF-16 "charset" must not hide them from the check).
    for byte in (b"\r", b"\n", b"\0"):
        if byte in raw and byte.decode() not in decoded:
            decoded += byte.decode()
    return decoded


def decode_encoded_words(value: str) -> str:
    """`value` with every RFC 2047 encoded word decoded, repeatedly (an encoded word may
    decode to another)."""
    for _ in range(_MAX_ROUNDS):
        decoded = _ENCODED_WORD.sub(_decode_word, value)
        if decoded == value:
            break
        value = decoded
    return value


def _bad_character(text: str) -> str | None:
    for char in text:
        if char in "\r\n":
            return "a line break"
        if char in _SEPARATORS or (char != "\t" and (ord(char) < 0x20
                                                     or 0x7F <= ord(char) <= 0x9F)):
            return f"a control character (U+{ord(char):04X})"
    return None


def header_problem(value: str) -> str | None:
    """Why `value` may not be written into an email header, or None when it may."""
    found = _bad_character(value)
    if found is not None:
        return f"contains {found}"
    found = _bad_character(decode_encoded_words(value))
    if found is not None:
        return f"contains {found} in an RFC 2047 encoded word"
    return None
