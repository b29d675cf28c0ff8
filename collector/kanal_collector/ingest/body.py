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


_BIG = float(_INT_LIMIT)


def parse_json(data: bytes) -> Any:
    """Parse strict JSON: UTF-8 only, no NaN/Infinity, no huge numbers, bounded depth."""
    try:
        value = orjson.loads(data)
    except RecursionError:
        raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}", code="too_deep") from None
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "infinity" in text:
            code = "bad_number"
        elif "surrogate" in text and "UTF-8" not in text:
            code = "bad_string"
        else:
            code = "invalid_json"
        raise BadRequest(f"invalid JSON: {text}", code=code) from None
    # orjson already refuses NaN, Infinity, overflowing floats and lone surrogates; it
    # reads integers beyond 64 bits as floats, so a huge float sends the body to the
    # exact (slower) standard-library parser, which tells the two apart.
    if _check_tree(value):
        return _parse_exact(data)
    return value


def _check_tree(value: Any) -> bool:
    """Refuse nesting deeper than MAX_DEPTH and 64-bit overflows; True when a float
    is so large that it may have been an integer."""
    suspicious = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            children: Any = node.values()
        elif kind is list:
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise BadRequest(f"JSON is nested deeper than {MAX_DEPTH}", code="too_deep")
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is int:
                if not -_INT_LIMIT < child < _INT_LIMIT:
                    raise BadRequest("integer out of range (beyond 64 bits)", code="bad_number")
            elif kind is float and not -_BIG < child < _BIG:
                suspicious = True
    return suspicious


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
