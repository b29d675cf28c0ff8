"""Reading request bodies safely: size limits, bounded gzip, strict JSON."""

from __future__ import annotations

import json
import math
import zlib
from typing import IO, Any

import orjson

from ..errors import BadRequest, PayloadTooLarge

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
MAX_DEPTH = 32
_INT_LIMIT = 2**63  # beyond int64 a number can't be stored or compared exactly


def read_body(
    stream: IO[bytes], *, content_length: int | None, encoding: str | None, limit: int
) -> bytes:
    """Read at most `limit` bytes of body, inflating gzip without ever holding more."""
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"body is {content_length} bytes; the limit is {limit}")
    # Never read past the declared length: a server may hand over the raw socket.
    data = stream.read(limit + 1 if content_length is None else content_length)
    if len(data) > limit:
        raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}", code="bad_encoding")
    # wbits 47 = auto-detect zlib or gzip headers; max_length stops a bomb early.
    inflater = zlib.decompressobj(47)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {encoding}: {exc}", code="bad_encoding") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    if not inflater.eof:
        raise BadRequest(f"body is truncated {encoding}", code="bad_encoding")
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


# Bytes that matter for nesting: brackets, and the quotes around strings.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'{}[]"')
# Valid JSON nests properly, so both kinds of bracket can be counted as one.
_ONE_KIND = bytes.maketrans(b"{}[]", b"()()")
# Every digit as "0", everything else as ".": a run of 19 zeros is a number (or a digit
# string) long enough to be an integer beyond 64 bits.
_DIGITS_ONLY = bytes.maketrans(bytes(range(256)),
                               bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256)))
_LONG_RUN = b"0" * 19


def parse_json(data: bytes) -> Any:
    """Parse strict JSON: UTF-8 only, no NaN/Infinity, no huge numbers, bounded depth.

    orjson does the parsing and already refuses NaN, Infinity, overflowing floats and
    lone surrogates, but reads integers beyond 64 bits as floats: a body with a long run
    of digits goes to the exact (slower) standard-library parser instead.
    """
    if _LONG_RUN in data.translate(_DIGITS_ONLY):
        return _parse_exact(data)
    try:
        value = orjson.loads(data)
    except RecursionError:
        raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}", code="too_deep") from None
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "depth" in text or "recursion" in text:
            raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}",
                             code="too_deep") from None
        if "infinity" in text:
            code = "bad_number"
        elif "surrogate" in text and "UTF-8" not in text:
            code = "bad_string"
        else:
            code = "invalid_json"
        raise BadRequest(f"invalid JSON: {text}", code=code) from None
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}", code="too_deep")
    return value


def _depth(data: bytes) -> int:
    """Nesting depth of valid JSON, from its bytes, at C speed: keep only brackets (and
    what delimits strings), drop the strings, then peel innermost pairs level by level."""
    # Escaped backslashes first, then escaped quotes: what is left of each string is
    # its two quotes around no other quote.
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = data.translate(_ONE_KIND, _NOT_STRUCTURE)  # deletes first, then maps
    # Quotes now alternate open/close. Two adjacent ones are an empty string or the end
    # of one string and the start of the next (nothing between them): dropping them
    # keeps the alternation and every bracket outside strings. Strings holding brackets
    # are left; then every other piece between quotes is a string.
    kept = kept.replace(b'""', b"")
    brackets = b"".join(kept.split(b'"')[::2]) if b'"' in kept else kept
    depth = 0
    while brackets and depth <= MAX_DEPTH:
        brackets = brackets.replace(b"()", b"")
        depth += 1
    return depth if not brackets else MAX_DEPTH + 1


def _parse_exact(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8: {exc.reason}", code="invalid_json") from None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}", code="too_deep") from None
    except ValueError as exc:  # JSONDecodeError, huge int digits, constants
        raise BadRequest(f"invalid JSON: {exc}", code="invalid_json") from None
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH, non-finite or huge numbers, lone surrogates."""
    stack: list[tuple[Any, int]] = [([value], 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}", code="too_deep")
        if type(node) is dict:
            for key in node:
                if not key.isascii():
                    _check_text(key)
            children: Any = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is str:
                if not child.isascii():
                    _check_text(child)
            elif kind is int:
                if not -_INT_LIMIT < child < _INT_LIMIT:
                    raise BadRequest("integer out of range (beyond 64 bits)", code="bad_number")
            elif kind is float and not math.isfinite(child):
                raise BadRequest("number out of range", code="bad_number")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("string holds a lone surrogate", code="bad_string") from None
