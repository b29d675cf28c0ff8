"""The `sms` channel: Twilio's Messages API.

Settings (`[channels.sms]`):
    account_sid             Twilio account SID (AC…)
    auth_token              e.g. { env = "TWILIO_AUTH_TOKEN" }
    from                    sender number in E.164 (or:)
    messaging_service_sid   a Messaging Service (MG…) that picks the sender
    status_callback         where Twilio posts delivery updates (optional): Kanal's public
                            base URL (https://kanal.example) to get /hooks/twilio/<name>
                            added, or any full URL, sent as it is
    inbound_url             the URL set as the number's incoming message webhook, as
                            Twilio signs it (default: the public URL with
                            /hooks/twilio/<name>/inbound)
    timeout                 seconds (default 10)
    base_url                default https://api.twilio.com (tests point it elsewhere)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from ._http import json_or_empty, request_error, required, setting_float, status_error
from .base import Channel, OutgoingMessage, PermanentError, SendResult

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CALLBACK_PATH = "/hooks/twilio/{channel}"
"""Where Kanal takes Twilio's status callbacks (messages/callbacks.py)."""
INBOUND_PATH = "/hooks/twilio/{channel}/inbound"
"""Where Kanal takes the messages people send to the channel's number (replies.py)."""


def callback_url(status_callback: Any, channel: str) -> str | None:
    """The StatusCallback URL for a channel's `status_callback` setting, or None.

    A bare origin (`https://kanal.example`, no path) is Kanal's public base URL and gets
    the callback route of this channel added; anything else is used as written.
    """
    if status_callback is None or status_callback == "":
        return None
    if not isinstance(status_callback, str):
        raise ValueError("status_callback must be a URL string")
    parts = urlsplit(status_callback)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"status_callback must be an http:// or https:// URL, "
                         f"not {status_callback!r}")
    if parts.path in ("", "/") and not parts.query and not parts.fragment:
        return status_callback.rstrip("/") + CALLBACK_PATH.format(channel=channel)
    return status_callback


class SmsChannel(Channel):
    """Send text messages through Twilio."""

    name: ClassVar[str] = "sms"
    kind: ClassVar[str] = "sms"
    recipient_identity: ClassVar[str | None] = "phone"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.account_sid = required(settings, "account_sid")
        self.auth_token = required(settings, "auth_token")
        self.sender = settings.get("from")
        self.messaging_service_sid = settings.get("messaging_service_sid")
        if not self.sender and not self.messaging_service_sid:
            raise ValueError("from or messaging_service_sid is required")
        if self.sender and not _E164.match(str(self.sender)):
            raise ValueError(f"from must be an E.164 number like +4670123456, "
                             f"not {self.sender!r}")
        self.status_callback = callback_url(settings.get("status_callback"), self.name)
        self.timeout = setting_float(settings, "timeout", 10.0)
        base = str(settings.get("base_url", "https://api.twilio.com")).rstrip("/")
        self.endpoint = f"{base}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        self._session = requests.Session()
        self._session.auth = (self.account_sid, self.auth_token)

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST one message to Twilio; its SID becomes the provider id."""
        if not _E164.match(message.recipient):
            raise PermanentError(f"not an E.164 phone number: {message.recipient!r}")
        text = message.content.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PermanentError("the sms content has no text")
        form = {"To": message.recipient, "Body": text}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = str(self.messaging_service_sid)
        else:
            form["From"] = str(self.sender)
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        try:
            response = self._session.post(self.endpoint, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            raise request_error("twilio", exc) from None
        data = json_or_empty(response)
        if response.status_code in (200, 201):
            sid = data.get("sid")
            return SendResult(provider_id=sid if isinstance(sid, str) else None,
                              detail={"status": data.get("status")})
        code = data.get("code")
        detail = f"error {code}: {data.get('message', response.text[:200])}"
        raise status_error("twilio", response, detail)

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()
