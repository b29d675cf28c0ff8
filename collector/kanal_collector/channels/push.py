"""The `push` channel: Firebase Cloud Messaging HTTP v1.

Settings (`[channels.push]`):
    service_account   path to the Google service-account JSON file (its key signs an
                      OAuth2 JWT, RS256, exchanged for an access token, cached ~1 hour)
    access_token      or a pre-issued OAuth2 token, e.g. { env = "FCM_TOKEN" }
    project_id        FCM project (default: the service account's project_id)
    timeout           seconds (default 10)
    base_url          default https://fcm.googleapis.com (tests point it elsewhere)

The recipient is a registration token. Content: title, body, optional data (a table of
strings; other values are sent as JSON text).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import requests

from ._http import json_or_empty, request_error, setting_float, status_error
from .base import Channel, OutgoingMessage, PermanentError, SendResult, TransientError

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_TOKEN_URI = "https://oauth2.googleapis.com/token"
# FCM error codes that mean this token or message will never work.
_PERMANENT = {"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH", "NOT_FOUND"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_jwt(account: Mapping[str, Any], now: float) -> str:
    """A signed (RS256) JWT asserting the service account for the FCM scope."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(str(account["private_key"]).encode(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("service_account: private_key is not an RSA key")
    header = {"alg": "RS256", "typ": "JWT"}
    if account.get("private_key_id"):
        header["kid"] = str(account["private_key_id"])
    claims = {"iss": account["client_email"], "scope": SCOPE,
              "aud": account.get("token_uri", _TOKEN_URI),
              "iat": int(now), "exp": int(now) + 3600}
    signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64(json.dumps(claims, separators=(",", ":")).encode()))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(signature)


class PushChannel(Channel):
    """Send push notifications through Firebase Cloud Messaging (HTTP v1)."""

    name: ClassVar[str] = "push"
    kind: ClassVar[str] = "push"
    recipient_identity: ClassVar[str | None] = "push_token"

    def __init__(self, settings: Mapping[str, Any], *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings)
        self._clock = clock
        self._account: dict[str, Any] | None = None
        path = settings.get("service_account")
        if path:
            try:
                self._account = json.loads(Path(str(path)).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"service_account: cannot read {path}: {exc}") from None
            missing = {"client_email", "private_key"} - set(self._account or {})
            if missing:
                raise ValueError(f"service_account: {path} lacks {', '.join(sorted(missing))}")
            try:
                import cryptography  # noqa: F401
            except ImportError:  # pragma: no cover - cryptography ships with kanal[server]
                raise ValueError("service_account needs the cryptography package "
                                 "(or set access_token instead)") from None
        self._token: str | None = settings.get("access_token") or None
        self._token_expires = float("inf")
        if self._account is None and self._token is None:
            raise ValueError("service_account or access_token is required")
        project = settings.get("project_id") or (self._account or {}).get("project_id")
        if not project:
            raise ValueError("project_id is required")
        self.project_id = str(project)
        self.timeout = setting_float(settings, "timeout", 10.0)
        base = str(settings.get("base_url", "https://fcm.googleapis.com")).rstrip("/")
        self.endpoint = f"{base}/v1/projects/{self.project_id}/messages:send"
        self._session = requests.Session()
        self._lock = threading.Lock()

    def _access_token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if self._account is None:
                return str(self._token)
            now = self._clock()
            if self._token and not refresh and now < self._token_expires - 60:
                return self._token
            account = self._account
            try:
                response = self._session.post(
                    str(account.get("token_uri", _TOKEN_URI)), timeout=self.timeout,
                    data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                          "assertion": service_account_jwt(account, now)})
            except requests.RequestException as exc:
                raise request_error("google oauth", exc) from None
            data = json_or_empty(response)
            if response.status_code != 200 or "access_token" not in data:
                # A bad key or a disabled account is the operator's to fix, not the
                # recipient's: retry later rather than failing the message.
                raise TransientError(f"google oauth answered {response.status_code}: "
                                     f"{data.get('error_description') or data.get('error')}")
            self._token = str(data["access_token"])
            self._token_expires = now + float(data.get("expires_in", 3600))
            return self._token

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST one message to FCM; its message name becomes the provider id."""
        if not message.recipient or any(c.isspace() for c in message.recipient):
            raise PermanentError(f"not a push registration token: {message.recipient!r}")
        content = message.content
        body: dict[str, Any] = {"token": message.recipient}
        notification = {k: str(content[k]) for k in ("title", "body", "image")
                        if content.get(k)}
        if notification:
            body["notification"] = notification
        data = content.get("data") or {}
        if not isinstance(data, Mapping):
            raise PermanentError("push data must be a table")
        if data:
            body["data"] = {str(k): v if isinstance(v, str) else json.dumps(v)
                            for k, v in data.items()}
        if "notification" not in body and "data" not in body:
            raise PermanentError("the push content has no title, body or data")
        for attempt in (0, 1):
            token = self._access_token(refresh=attempt == 1)
            try:
                response = self._session.post(
                    self.endpoint, json={"message": body}, timeout=self.timeout,
                    headers={"Authorization": f"Bearer {token}"})
            except requests.RequestException as exc:
                raise request_error("fcm", exc) from None
            if response.status_code == 401 and self._account is not None and attempt == 0:
                continue  # the cached token expired early: get a new one, once
            break
        result = json_or_empty(response)
        if response.status_code == 200:
            return SendResult(provider_id=result.get("name"))
        error = result.get("error") or {}
        codes = {str(error.get("status", ""))}
        for item in error.get("details") or []:
            if isinstance(item, Mapping) and item.get("errorCode"):
                codes.add(str(item["errorCode"]))
        codes.discard("")
        detail = f"{'/'.join(sorted(codes)) or 'error'}: {error.get('message', '')}"
        if response.status_code == 401:
            raise TransientError(f"fcm refused the credentials (401): {detail}")
        if codes & _PERMANENT:
            raise PermanentError(f"fcm answered {response.status_code}: {detail}")
        raise status_error("fcm", response, detail)

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()
