"""What every provider webhook is: verify the request, then read its reports.

    WebhookError
    ├── Refused      403: the signature or credentials don't check out (nothing is read)
    └── BadPayload   400: signed, but not a payload this provider sends
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..feedback import Report


class WebhookError(Exception):
    """A webhook request that can't be taken."""


class Refused(WebhookError):
    """The request is not signed (or authenticated) by the provider."""


class BadPayload(WebhookError):
    """The request is authentic but its body is not what the provider sends."""


@dataclass(frozen=True)
class Incoming:
    """One webhook request as the route received it."""

    body: bytes
    headers: Mapping[str, str]
    """Names in lower case (`Incoming.of` makes them so)."""
    now: float
    """Seconds since the epoch (the app's clock)."""

    @classmethod
    def of(cls, body: bytes, headers: Any, now: float) -> Incoming:
        """From a body, any header mapping (werkzeug's Headers, a dict) and a time."""
        return cls(body, {str(k).lower(): str(v) for k, v in dict(headers).items()}, now)

    def header(self, name: str) -> str:
        """One header's value ('' when absent), by any spelling of its name."""
        return self.headers.get(name.lower(), "")


@dataclass
class Outcome:
    """What a verified request said."""

    reports: list[Report] = field(default_factory=list)
    note: str | None = None
    """Something the route logs (a subscription confirmed, an event type ignored)."""


Fetch = Callable[[str], bytes]
"""GET a URL and return its body (SNS certificates and confirmations); injectable."""


class Provider:
    """A provider's webhook: `verify` raises Refused, `read` turns the body into reports."""

    name = "provider"
    docs = ""

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        self.settings = settings
        self.fetch = fetch

    def verify(self, incoming: Incoming) -> None:
        """Raise Refused unless the request comes from the provider."""
        raise NotImplementedError

    def read(self, incoming: Incoming) -> Outcome:
        """The reports in a verified request; BadPayload when it can't be read."""
        raise NotImplementedError


def json_body(body: bytes) -> Any:
    """The body as JSON, or BadPayload."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from None


def required_secret(settings: Mapping[str, Any], key: str, provider: str) -> str:
    """A setting that must be a non-empty string; ValueError naming it."""
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"[deliverability.{provider}] {key} is required")
    return value


def check_basic_or_bearer(incoming: Incoming, *, username: str | None,
                          password: str | None, token: str | None) -> None:
    """Refused unless Authorization carries these Basic credentials or this bearer
    token (compared in constant time)."""
    header = incoming.header("Authorization")
    scheme, _, value = header.partition(" ")
    ok = False
    if scheme.lower() == "basic" and username is not None and password is not None:
        try:
            user, _, given = base64.b64decode(value.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Refused("malformed Basic credentials") from None
        ok = (hmac.compare_digest(user.encode(), username.encode())
              & hmac.compare_digest(given.encode(), password.encode()))
    elif scheme.lower() == "bearer" and token is not None:
        ok = hmac.compare_digest(value.strip().encode(), token.encode())
    if not ok:
        raise Refused("missing or wrong credentials")


def fresh(timestamp: str | None, now: float, tolerance: float) -> float:
    """The signed timestamp (seconds) if it is within `tolerance` of now; else Refused."""
    try:
        t = float(timestamp or "")
    except ValueError:
        raise Refused("missing or unreadable timestamp") from None
    if abs(now - t) > tolerance:
        raise Refused(f"timestamp {timestamp} is more than {tolerance:g} s from now")
    return t


def text(value: Any) -> str | None:
    """A string field of a payload, or None."""
    return value if isinstance(value, str) and value else None


def obj(value: Any) -> dict[str, Any]:
    """A JSON object field, or an empty one."""
    return value if isinstance(value, dict) else {}
