"""The `webhook` channel: a JSON POST signed with HMAC-SHA256, to public addresses only.

Settings (`[channels.webhook]`):
    url             where to POST (http or https)
    secret          signing key, e.g. { env = "WEBHOOK_SECRET" }
    timeout         seconds (default 10)
    max_redirects   redirect hops to follow, each checked like the first (default 3)
    headers         extra request headers (a table)
    allow_private   reach loopback/private/link-local addresses (default false; cloud
                    metadata addresses stay refused)

The body is the rendered `payload`; `X-Kanal-Signature: t=<unix>,v1=<hex>` is the hex
HMAC-SHA256 of `"<t>.<body>"`, and `Idempotency-Key` is the outbox row's key so a
receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests

from . import netguard
from ._http import json_or_empty, request_error, required, setting_float, status_error
from .base import Channel, OutgoingMessage, PermanentError, SendResult

SIGNATURE_HEADER = "X-Kanal-Signature"
_REDIRECTS = {301, 302, 303, 307, 308}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Kanal-Signature value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None,
           tolerance: float = 300) -> bool:
    """Check an X-Kanal-Signature header (what a receiver does); constant-time compare."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookChannel(Channel):
    """POST the rendered payload as JSON to a configured URL, signed."""

    name: ClassVar[str] = "webhook"
    kind: ClassVar[str] = "webhook"
    recipient_identity: ClassVar[str | None] = None
    supports_idempotency_key: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any], *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings)
        self.url = required(settings, "url")
        self.secret = required(settings, "secret")
        self.timeout = setting_float(settings, "timeout", 10.0)
        self.max_redirects = int(settings.get("max_redirects", 3))
        self.allow_private = bool(settings.get("allow_private", False))
        headers = settings.get("headers", {})
        if not isinstance(headers, Mapping):
            raise ValueError("headers must be a table")
        self.headers = {str(k): str(v) for k, v in headers.items()}
        for key, value in self.headers.items():
            if any(c in key + value for c in "\r\n\0"):
                raise ValueError(f"headers.{key} contains a line break")
        if urlsplit(self.url).scheme not in {"http", "https"}:
            raise ValueError(f"url must be http or https, not {self.url!r}")
        self._clock = clock
        self._session = netguard.guarded_session(allow_private=self.allow_private)

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST the payload; follow redirects only to checked public addresses."""
        payload = message.content.get("payload", message.content)
        try:
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                              sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"webhook payload is not JSON: {exc}") from None
        timestamp = int(self._clock())
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": "Kanal-Webhook/1",
            "Idempotency-Key": message.idempotency_key,
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        url = self.url
        origin = _origin(url)
        for _hop in range(self.max_redirects + 1):
            try:
                netguard.check_url(url, allow_private=self.allow_private)
                response = self._session.post(url, data=body, headers=headers,
                                              timeout=self.timeout, allow_redirects=False)
            except netguard.BlockedAddress as exc:
                raise PermanentError(f"webhook refused: {exc}") from None
            except requests.RequestException as exc:
                raise request_error("webhook", exc) from None
            with response:
                if response.status_code in _REDIRECTS and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    if _origin(url) != origin:
                        # Like requests and browsers: settings' headers (credentials,
                        # typically) stay with the configured origin.
                        headers = {k: v for k, v in headers.items() if k not in self.headers}
                    continue
                if 200 <= response.status_code < 300:
                    data = json_or_empty(response)
                    provider_id = data.get("id")
                    return SendResult(
                        provider_id=str(provider_id) if provider_id is not None else None,
                        detail={"status": response.status_code, "url": url})
                raise status_error("webhook", response, response.text[:200])
        raise PermanentError(f"webhook: more than {self.max_redirects} redirects")

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port
