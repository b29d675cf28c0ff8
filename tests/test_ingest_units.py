"""Ingest parts on their own: body limits, the spec, enrichment, rate limits, key cache."""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kanal_collector.errors import BadRequest, PayloadTooLarge
from kanal_collector.ingest.body import parse_json, read_body
from kanal_collector.ingest.enrich import (
    anonymize_ip,
    campaign_from_url,
    client_ip,
    origin_of,
    verify_user_hash,
)
from kanal_collector.ingest.ratelimit import RateLimiter, retry_after_seconds
from kanal_collector.ingest.spec import InvalidMessage, normalize, parse_time


def read(data: bytes, encoding: str | None = None, limit: int = 1000,
         length: int | None = None) -> bytes:
    return read_body(io.BytesIO(data), content_length=length, encoding=encoding, limit=limit)


def test_read_body_limits() -> None:
    assert read(b"x" * 1000) == b"x" * 1000
    with pytest.raises(PayloadTooLarge):
        read(b"x" * 1001)
    with pytest.raises(PayloadTooLarge):
        read(b"", length=5000)  # refused from the header, before reading
    assert read(gzip.compress(b"y" * 1000), "gzip") == b"y" * 1000
    with pytest.raises(PayloadTooLarge):
        read(gzip.compress(b"y" * 1001), "gzip")
    with pytest.raises(BadRequest, match="truncated"):
        read(gzip.compress(b"y" * 500)[:-12], "gzip")


@pytest.mark.parametrize("raw,ok", [
    (b'{"a": [1, 2.5, "x", null, true]}', True),
    (b'{"a": "\\u00e9\\ud83d\\ude00"}', True),   # a valid surrogate pair
    (b'{"a": "\\ud83d"}', False),
    (b'{"a": NaN}', False),
    (b'{"a": 1e999}', False),
    (b'{"a": 9223372036854775807}', True),
    (b'{"a": 9223372036854775808}', False),
    (b'"just a string"', True),
])
def test_parse_json_strictness(raw: bytes, ok: bool) -> None:
    if ok:
        parse_json(raw)
    else:
        with pytest.raises(BadRequest):
            parse_json(raw)


def test_normalize_fills_type_and_message_id() -> None:
    msg = normalize({"anonymousId": 12, "event": "E"}, expected_type="track")
    assert msg["type"] == "track"
    assert msg["anonymousId"] == "12"
    assert len(msg["messageId"]) == 36


@pytest.mark.parametrize("msg,reason", [
    ({"type": "track", "userId": "", "event": "E"}, "userId or anonymousId"),
    ({"type": "track", "userId": True, "event": "E"}, "userId must be a string"),
    ({"type": "track", "userId": "u", "event": "  "}, "event name"),
    ({"type": "track", "userId": "u", "event": "E" * 300}, "longer than"),
    ({"type": "page", "userId": "u", "name": 5}, "name must be a string"),
    ({"type": "group", "userId": "u"}, "groupId"),
    ({"type": "alias", "anonymousId": "a", "previousId": "p"}, "alias needs a userId"),
    ({"type": "identify", "userId": "u", "traits": []}, "traits must be an object"),
    ({"type": "identify", "userId": "u", "messageId": 5}, "messageId"),
])
def test_normalize_rejects_with_a_reason(msg: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        normalize(msg)


def test_parse_time_forms() -> None:
    assert parse_time("2026-01-01T00:00:00Z", "t") == 1767225600.0
    assert parse_time("2026-01-01T01:00:00+01:00", "t") == 1767225600.0
    assert parse_time("2026-01-01T00:00:00", "t") == 1767225600.0  # naive = UTC
    assert parse_time(None, "t") is None
    with pytest.raises(InvalidMessage):
        parse_time(12345, "t")


def test_client_ip_behind_trusted_proxies() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_ip("10.0.0.2", "203.0.113.9, 10.0.0.5", trusted) == "203.0.113.9"
    assert client_ip("198.51.100.1", "203.0.113.9", trusted) == "198.51.100.1"  # untrusted
    assert client_ip("10.0.0.2", "spoofed, 198.51.100.7", trusted) == "198.51.100.7"
    assert client_ip("10.0.0.2", None, trusted) == "10.0.0.2"
    assert client_ip("10.0.0.2", "1.2.3.4", []) == "10.0.0.2"  # no proxies configured


def test_anonymize_ip() -> None:
    assert anonymize_ip("203.0.113.77") == "203.0.113.0"
    assert anonymize_ip("2001:db8:1:2:3:4:5:6") == "2001:db8:1::"
    assert anonymize_ip("garbage") == "garbage"


def test_campaign_from_url() -> None:
    url = "https://s.example/x?utm_source=a&UTM_MEDIUM=b&utm_campaign=c&utm_term=&q=1"
    assert campaign_from_url(url) == {"source": "a", "medium": "b", "name": "c"}
    assert campaign_from_url("https://s.example/") == {}


@pytest.mark.parametrize("kind,context,origin", [
    ("secret", {}, "server"),
    ("secret", {"origin": "store"}, "store"),
    ("secret", {"origin": "mars"}, "server"),
    ("public", {}, "web"),
    ("public", {"origin": "store"}, "web"),
    ("public", {"app": {"name": "Shop"}}, "app"),
    ("public", {"os": {"name": "Android"}}, "app"),
    ("public", {"library": {"name": "analytics-react-native"}}, "app"),
])
def test_origin(kind: str, context: dict[str, Any], origin: str) -> None:
    assert origin_of(kind, context) == origin


def test_verify_user_hash() -> None:
    import hashlib
    import hmac

    good = hmac.new(b"sk_1", b"u1", hashlib.sha256).hexdigest()
    assert verify_user_hash("u1", good, ["sk_0", "sk_1"])
    assert verify_user_hash("u1", good.upper(), ["sk_1"])
    assert not verify_user_hash("u2", good, ["sk_1"])
    assert not verify_user_hash("u1", good, [])
    assert not verify_user_hash("u1", 5, ["sk_1"])


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 2.0, monotonic=lambda: now[0])
    assert [limiter.check("k") for _ in range(2)] == [0.0, 0.0]
    wait = limiter.check("k")
    assert wait == pytest.approx(0.5)
    assert retry_after_seconds(wait) == 1
    assert limiter.check("other") == 0.0
    now[0] += 0.5
    assert limiter.check("k") == 0.0
    assert RateLimiter(0, 0).check("k") == 0.0  # off


def _walk_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_walk_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_walk_depth(v) for v in value), default=0)
    return 0


_tricky_text = st.text(alphabet='ab{}[]"\\\\/\n\x1f\u00e9', max_size=12)
_json_trees = st.recursive(
    st.none() | st.integers(-10, 10) | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json_trees)
def test_depth_from_bytes_matches_a_walk(value: Any) -> None:
    from kanal_collector.ingest.body import _depth

    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert _depth(text.encode()) == min(_walk_depth(value), 33)
