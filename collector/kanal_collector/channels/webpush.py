"""The `webpush` channel: the Web Push protocol (RFC 8030) with VAPID (RFC 8292).

Settings (`[channels.webpush]`):
    vapid_private_key   the VAPID key: { env = "KANAL_VAPID_PRIVATE_KEY" } (base64url,
                        as `kanal webpush keys` prints it; PEM works too)
    subject             who runs the sender: "mailto:ops@shop.example" or an https URL
    ttl                 seconds a push service keeps an undelivered message (default 1d)
    urgency             very-low | low | normal | high (default normal)
    timeout             seconds per request (default 10)
    push_hosts          push services subscriptions may point at (default: the browsers'
                        own: FCM, Mozilla, Apple, Microsoft); a subscription elsewhere is
                        refused when it is made and never sent to
    allow_private       reach loopback/private addresses (a local push-service stand-in
                        in tests); cloud metadata addresses stay refused

The recipient is a subscription (the `webpush` identity: JSON with the endpoint and the
browser's P-256 key and auth secret). The payload — title, body, icon and the URL a
click opens — is encrypted for that browser per RFC 8291 (aes128gcm) by pywebpush (which
uses http_ece), and posted through the SSRF guard. 404 and 410 mean the subscription is
gone: RecipientGone, so the dispatcher removes it from the person.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from . import netguard
from ._http import request_error, required, setting_float, status_error
from .base import Channel, OutgoingMessage, PermanentError, RecipientGone, SendResult

PUSH_HOSTS = ("fcm.googleapis.com", "updates.push.services.mozilla.com",
              "push.services.mozilla.com", "web.push.apple.com", "notify.windows.com",
              "push.apple.com")
"""Push services of the major browsers (a subscription's endpoint host, or a parent)."""
URGENCIES = ("very-low", "low", "normal", "high")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")
MAX_ENDPOINT = 1024
MAX_PAYLOAD = 3800  # RFC 8291 leaves 3993 bytes of a 4096-byte record for the payload


class BadSubscription(ValueError):
    """A push subscription that is malformed or points somewhere it may not."""


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def host_allowed(host: str, hosts: tuple[str, ...]) -> bool:
    """True when `host` is one of `hosts` or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == h or host.endswith("." + h) for h in hosts)


def parse_subscription(value: Any, *, hosts: tuple[str, ...]) -> dict[str, Any]:
    """A browser's PushSubscription (its toJSON()) checked: an https endpoint on one of
    `hosts` (http only for loopback hosts listed there), a P-256 public key (65 bytes,
    uncompressed) and a 16-byte auth secret. Returns {endpoint, keys: {p256dh, auth}};
    BadSubscription otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadSubscription("not JSON") from None
    if not isinstance(value, Mapping):
        raise BadSubscription("a subscription is {endpoint, keys: {p256dh, auth}}")
    endpoint = value.get("endpoint")
    keys = value.get("keys")
    if not isinstance(endpoint, str) or not 0 < len(endpoint) <= MAX_ENDPOINT:
        raise BadSubscription("endpoint: a URL")
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        raise BadSubscription("endpoint: not a URL") from None
    host = parts.hostname or ""
    local = host in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise BadSubscription("endpoint: must be https")
    if not host_allowed(host, hosts):
        raise BadSubscription(f"endpoint: {host!r} is not a known push service "
                              f"(push_hosts)")
    if not isinstance(keys, Mapping):
        raise BadSubscription("keys: {p256dh, auth}")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    for name, text, size in (("p256dh", p256dh, 65), ("auth", auth, 16)):
        if not isinstance(text, str) or not _B64URL.match(text):
            raise BadSubscription(f"keys.{name}: base64url")
        raw = _unb64(text)
        if len(raw) != size or (name == "p256dh" and raw[0] != 4):
            raise BadSubscription(f"keys.{name}: {size} bytes"
                                  + (" (an uncompressed P-256 point)" if size == 65 else ""))
    assert isinstance(p256dh, str) and isinstance(auth, str)
    return {"endpoint": endpoint, "keys": {"auth": auth.rstrip("="),
                                           "p256dh": p256dh.rstrip("=")}}


def subscription_identity(subscription: Mapping[str, Any]) -> str:
    """The `webpush` identity of a checked subscription: canonical JSON."""
    return json.dumps(subscription, separators=(",", ":"), sort_keys=True)


def load_vapid(private_key: str) -> Any:
    """A py_vapid key from base64url (raw or DER) or PEM text; ValueError otherwise."""
    from py_vapid import Vapid

    text = private_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(text)
    except Exception as exc:  # py_vapid raises whatever cryptography does
        raise ValueError(f"vapid_private_key: not a P-256 private key ({exc})") from None


def public_key_b64(vapid: Any) -> str:
    """The applicationServerKey a browser subscribes with (base64url, uncompressed)."""
    from cryptography.hazmat.primitives import serialization

    raw = vapid.public_key.public_bytes(serialization.Encoding.X962,
                                        serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class WebPushChannel(Channel):
    """Send encrypted Web Push messages to browser subscriptions."""

    name: ClassVar[str] = "webpush"
    kind: ClassVar[str] = "push"
    recipient_identity: ClassVar[str | None] = "webpush"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.vapid = load_vapid(required(settings, "vapid_private_key"))
        self.public_key = public_key_b64(self.vapid)
        self.subject = required(settings, "subject")
        if not self.subject.startswith(("mailto:", "https://")):
            raise ValueError(f"subject must be a mailto: address or an https URL, "
                             f"not {self.subject!r}")
        self.ttl = int(settings.get("ttl", 86_400))
        if self.ttl < 0:
            raise ValueError("ttl must not be negative")
        self.urgency = str(settings.get("urgency", "normal"))
        if self.urgency not in URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}")
        self.timeout = setting_float(settings, "timeout", 10.0)
        hosts = settings.get("push_hosts", list(PUSH_HOSTS))
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError("push_hosts must be a list of host names")
        self.push_hosts = tuple(h.lower() for h in hosts)
        self.allow_private = bool(settings.get("allow_private", False))
        self._session = netguard.guarded_session(allow_private=self.allow_private)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Encrypt the payload for the subscription and post it to its push service."""
        from pywebpush import WebPushException, webpush

        try:
            subscription = parse_subscription(message.recipient, hosts=self.push_hosts)
        except BadSubscription as exc:
            raise PermanentError(f"webpush: bad subscription: {exc}") from None
        content = message.content
        data = content.get("data") or {}
        if not isinstance(data, Mapping):
            raise PermanentError("push data must be a table")
        payload = {k: str(content[k]) for k in ("title", "body", "icon", "image")
                   if content.get(k)}
        if data.get("url"):
            payload["url"] = str(data["url"])
        payload["tag"] = f"kanal-{message.outbox_id}"
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        if len(body.encode()) > MAX_PAYLOAD:
            raise PermanentError(f"webpush payload is over {MAX_PAYLOAD} bytes")
        endpoint = subscription["endpoint"]
        try:
            netguard.check_url(endpoint, allow_private=self.allow_private)
        except netguard.BlockedAddress as exc:
            raise PermanentError(f"webpush refused: {exc}") from None
        parts = urlsplit(endpoint)
        claims: dict[str, str | int] = {"sub": self.subject,
                                        "aud": f"{parts.scheme}://{parts.netloc}"}
        try:
            response = webpush(subscription, body, vapid_private_key=self.vapid,
                               vapid_claims=claims, content_encoding="aes128gcm",
                               ttl=self.ttl, timeout=self.timeout,
                               headers={"Urgency": self.urgency},
                               requests_session=self._session)
        except WebPushException as exc:
            answer = exc.response
            if answer is None:
                raise PermanentError(f"webpush: {exc}") from None
            if answer.status_code in (404, 410):
                raise RecipientGone(f"webpush answered {answer.status_code}: the "
                                    "subscription is gone") from None
            raise status_error("webpush", answer, answer.text[:200]) from None
        except netguard.BlockedAddress as exc:
            raise PermanentError(f"webpush refused: {exc}") from None
        except requests.RequestException as exc:
            raise request_error("webpush", exc) from None
        assert isinstance(response, requests.Response)
        location = response.headers.get("Location")
        return SendResult(provider_id=location[:500] if location else None,
                          detail={"status": response.status_code})

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()
