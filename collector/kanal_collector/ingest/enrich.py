"""Enrichment: receive time and clock skew, user agent, client IP, campaign, origin."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..clock import utc_iso
from ..store.events import EventRow, left_out_bytes, slim_body
from ..store.keys import KeyInfo
from .body import MAX_MESSAGE_BYTES
from .spec import InvalidMessage, parse_time

_new_tuple = tuple.__new__
ORIGINS = frozenset({"web", "app", "server", "email", "sms", "push", "store"})
_APP_OS = frozenset({"ios", "android", "ipados", "tvos", "watchos"})
_APP_LIBRARY_HINTS = ("ios", "android", "react-native", "flutter", "swift", "kotlin", "xamarin")
_UTM = {"utm_campaign": "name", "utm_source": "source", "utm_medium": "medium",
        "utm_term": "term", "utm_content": "content"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the HTTP request says about where a message came from."""

    ip: str | None
    user_agent: str | None
    received_at: float
    batch_sent_at: Any = None




@lru_cache(maxsize=1024)  # a batch shares its receivedAt and sentAt
def _utc_iso(seconds: float) -> str:
    """clock.utc_iso, four times faster (strftime and isoformat are slow)."""
    dt = datetime.fromtimestamp(seconds, UTC)
    if dt.year < 1000:  # strftime's %Y is not zero-padded there on every platform
        return utc_iso(seconds)
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z")


@lru_cache(maxsize=4096)
def describe_user_agent(user_agent: str) -> dict[str, Any]:
    """Browser, OS, device class and bot flag of a User-Agent string (cached)."""
    # Imported on first use: the parser compiles its regexes on import (about half a
    # second), which every command that merely imports this module would pay;
    # `kanal serve` warms it before it listens (server.py).
    from user_agents import parse as parse_user_agent

    ua = parse_user_agent(user_agent)
    if ua.is_bot:
        device = "bot"
    elif ua.is_tablet:
        device = "tablet"
    elif ua.is_mobile:
        device = "mobile"
    elif ua.is_pc:
        device = "desktop"
    else:
        device = "other"
    return {
        "browser": ua.browser.family, "browserVersion": ua.browser.version_string,
        "os": ua.os.family, "osVersion": ua.os.version_string,
        "device": device, "deviceModel": ua.device.family, "bot": bool(ua.is_bot),
    }


def client_ip(remote_addr: str | None, forwarded_for: str | None,
              trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str | None:
    """The client's address: the peer, or the nearest untrusted hop of X-Forwarded-For
    when the peer is a trusted proxy."""
    if not remote_addr or not trusted or not forwarded_for:
        return remote_addr

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(remote_addr):
        return remote_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote_addr
    return hops[0] if hops else remote_addr


def anonymize_ip(addr: str) -> str:
    """Zero the host part: the last octet of IPv4, the last 80 bits of IPv6."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def campaign_from_url(url: str) -> dict[str, str]:
    """UTM parameters of a page URL, under Segment's context.campaign names."""
    if "?" not in url:
        return {}
    if len(url) > _MAX_CACHED_URL:
        return dict(_campaign(url))
    return dict(_cached_campaign(url))


def _campaign(url: str) -> tuple[tuple[str, str], ...]:
    try:
        query = urlsplit(url).query
    except ValueError:  # e.g. an unclosed IPv6 bracket: no campaign, not an error
        return ()
    if not query:
        return ()
    out: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=False):
        field = _UTM.get(name.lower())
        if field and value and field not in out:
            out[field] = value[:_MAX_FIELD]
    return tuple(out.items())


# The same campaign links (a newsletter's, an ad's) arrive again and again.
_MAX_CACHED_URL = 2048
_cached_campaign = lru_cache(maxsize=4096)(_campaign)


_MAX_FIELD = 500
_YEAR_10000 = 253402300800.0
_ENRICHMENT_ROOM = 2048


def _is_canonical(value: Any) -> bool:
    """True for a timestamp already in the stored form, 2026-05-04T10:15:01.123Z."""
    return (isinstance(value, str) and len(value) == 24 and value[23] == "Z"
            and value[10] == "T" and value[19] == ".")


@lru_cache(maxsize=256)
def _app_library(name: str) -> bool:
    name = name.lower()
    return any(hint in name for hint in _APP_LIBRARY_HINTS)


def origin_of(key_kind: str, context: dict[str, Any]) -> str:
    """web, app or server from the key and what the client library says of itself."""
    if key_kind == "secret":
        claimed = context.get("origin")
        return claimed if claimed in ORIGINS else "server"
    get = context.get
    if isinstance(get("app"), dict):
        return "app"
    device = get("device")
    if isinstance(device, dict) and str(device.get("type", "")).lower() in _APP_OS:
        return "app"
    system = get("os")
    if isinstance(system, dict) and str(system.get("name", "")).lower() in _APP_OS:
        return "app"
    library = get("library")
    if isinstance(library, dict):
        name = library.get("name")
        if isinstance(name, str) and _app_library(name):
            return "app"
    return "web"


def verify_user_hash(user_id: str, user_hash: Any, secrets: Sequence[str]) -> bool:
    """True when user_hash is the hex HMAC-SHA256 of user_id under one of the secrets."""
    if not isinstance(user_hash, str) or len(user_hash) != 64:
        return False
    given = user_hash.lower().encode("ascii", "replace")
    message = user_id.encode("utf-8")
    ok = False
    for secret in secrets:
        digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(digest.encode("ascii"), given)
    return ok


def enrich(
    msg: dict[str, Any],
    key: KeyInfo,
    request: RequestInfo,
    *,
    anonymize: bool,
    secrets: Sequence[str] = (),
) -> EventRow:
    """Finish a normalized message for the log and return its row; InvalidMessage if
    it ends up over the size limit."""
    return Enricher(key, request, anonymize=anonymize, secrets=secrets)(msg)


class Enricher:
    """`enrich` for the messages of one request: what they share (key, address, User-Agent,
    receive time, the batch's sentAt) is worked out once."""

    __slots__ = ("_key_kind", "_source_id", "_request_ip", "_anonymize", "_secrets",
                 "_received", "_received_ms", "_received_iso", "_batch_sent_at",
                 "_request_ua", "_request_ua_description")

    def __init__(self, key: KeyInfo, request: RequestInfo, *, anonymize: bool,
                 secrets: Sequence[str] = ()) -> None:
        self._key_kind = key.kind
        self._source_id = key.source_id or 0
        ip = request.ip
        self._request_ip = (anonymize_ip(ip) if anonymize else ip) if ip else None
        self._anonymize = anonymize
        self._secrets = secrets
        received = request.received_at
        self._received = received
        self._received_ms = int(received * 1000)
        self._received_iso = _utc_iso(received)
        self._batch_sent_at = request.batch_sent_at
        ua = request.user_agent
        self._request_ua = ua
        self._request_ua_description = (describe_user_agent(ua[:1000])
                                        if isinstance(ua, str) and ua else None)

    def __call__(self, msg: dict[str, Any]) -> EventRow:
        """Finish one normalized message (changed in place, and kept whole) and return
        its row, whose body leaves out what its columns hold (store.events.slim_body)."""
        get = msg.get
        context = get("context")
        if context is None:
            context = msg["context"] = {}
        key_kind = self._key_kind

        received = self._received
        given = get("timestamp")
        original = parse_time(given, "timestamp")
        if original is None:
            given = get("originalTimestamp")
            original = parse_time(given, "originalTimestamp")
        sent_value = get("sentAt", self._batch_sent_at)
        sent = parse_time(sent_value, "sentAt")
        if original is None:
            timestamp = received
        elif sent is not None:
            # Correct the client's clock: the gap between sending and the event is real,
            # the client's idea of "now" may not be.
            timestamp = received - (sent - original)
        else:
            timestamp = original
        if not 0 <= timestamp < _YEAR_10000:
            raise InvalidMessage("timestamp corrected by sentAt falls outside years 1970-9999")
        if original is not None:
            # The text that was parsed: timestamp when set, else originalTimestamp.
            msg["originalTimestamp"] = given if _is_canonical(given) else _utc_iso(original)
        if sent is not None:
            msg["sentAt"] = _utc_iso(sent)
        msg["timestamp"] = _utc_iso(timestamp)
        msg["receivedAt"] = self._received_iso

        # A browser or app may not claim an address: only a backend speaks for its users.
        if key_kind == "secret":
            ip = context.get("ip")
            if isinstance(ip, str) and ip:
                context["ip"] = anonymize_ip(ip) if self._anonymize else ip
            elif self._request_ip:
                context["ip"] = self._request_ip
        elif self._request_ip:
            context["ip"] = self._request_ip
        user_agent = context.get("userAgent")
        if (not isinstance(user_agent, str) and key_kind != "secret"
                and self._request_ua):
            user_agent = context["userAgent"] = self._request_ua
        if user_agent is self._request_ua and self._request_ua_description is not None:
            context["kanal"] = dict(self._request_ua_description)
        elif isinstance(user_agent, str) and user_agent:
            context["kanal"] = dict(describe_user_agent(user_agent[:1000]))
        else:
            context["kanal"] = {}  # never what the client sent under that name

        if "campaign" not in context:
            page = context.get("page")
            if isinstance(page, dict):
                url = page.get("url")
                if isinstance(url, str):
                    campaign = campaign_from_url(url)
                    if campaign:
                        context["campaign"] = campaign

        user_id = get("userId")
        user_hash = context.pop("userHash", None)
        verified = key_kind == "secret" or (
            user_id is not None and user_hash is not None
            and verify_user_hash(user_id, user_hash, self._secrets)
        )
        origin = origin_of(key_kind, context)
        kind = msg["type"]
        name = get("event") if kind == "track" else get("name")
        event = name if isinstance(name, str) else None
        message_id = msg["messageId"]
        anonymous_id = get("anonymousId")
        timestamp_ms = int(timestamp * 1000)
        # The row's columns hold these keys; `msg` stays whole for the caller.
        body = slim_body(msg, message_id, kind, event, user_id, anonymous_id, timestamp_ms,
                         self._received_ms)
        try:
            encoded = orjson.dumps(body)
        except (TypeError, orjson.JSONEncodeError) as exc:  # e.g. an int beyond 64 bits
            raise InvalidMessage(f"message can't be stored as JSON: {exc}") from None
        # The limit is on what the client sent; what enrichment adds gets some room. The
        # keys left to the columns count as before: a 40 KB page name is still refused.
        if len(encoded) + left_out_bytes(msg, body) > MAX_MESSAGE_BYTES + _ENRICHMENT_ROOM:
            raise InvalidMessage(f"message is over {MAX_MESSAGE_BYTES // 1024} KB")
        # tuple.__new__ skips EventRow's Python-level __new__: the same EventRow, cheaper.
        return _new_tuple(EventRow, (  # in column order
            self._source_id,  # source_id
            message_id,  # message_id
            kind,  # type
            event,  # event
            user_id,  # user_id
            anonymous_id,  # anonymous_id
            origin,  # origin
            key_kind,  # key_kind
            int(verified),  # verified
            timestamp_ms,  # timestamp
            self._received_ms,  # received_at
            encoded.decode("utf-8"),  # body
        ))
