"""kanal-chat: post Kanal messages to a Slack-style incoming webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import requests

from kanal_collector.channels import (
    Channel,
    OutgoingMessage,
    PermanentError,
    SendResult,
    TransientError,
    hookimpl,
)
from kanal_collector.channels.netguard import BlockedAddress, guarded_session
from kanal_collector.config_keys import Key

__all__ = ["ChatChannel", "register_channels", "register_settings"]


class ChatChannel(Channel):
    """Post the message's text to a chat room's incoming webhook."""

    name: ClassVar[str] = "chat"
    kind: ClassVar[str] = "sms"  # a short text is what a chat room wants
    recipient_identity: ClassVar[str | None] = None  # the room is in the settings

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        url = settings.get("webhook_url")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise ValueError("webhook_url is required and must be an https URL")
        self.webhook_url = url
        self.username = settings.get("username")
        self.timeout = float(settings.get("timeout", 10))
        self._session = guarded_session(allow_private=bool(settings.get("allow_private")))

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST {"text": …} to the webhook."""
        text = message.content.get("text")
        if not text:
            raise PermanentError("the message has no text for the chat room")
        body: dict[str, Any] = {"text": str(text)}
        if self.username:
            body["username"] = str(self.username)
        try:
            response = self._session.post(self.webhook_url, json=body, timeout=self.timeout,
                                          allow_redirects=False)
        except BlockedAddress as exc:
            raise PermanentError(f"chat webhook refused: {exc}") from None
        except requests.RequestException as exc:
            raise TransientError(f"chat webhook request failed: {exc}") from None
        if 200 <= response.status_code < 300:
            return SendResult(detail={"status": response.status_code})
        detail = f"chat webhook answered {response.status_code}: {response.text[:200]}"
        if response.status_code == 429 or response.status_code >= 500:
            retry = response.headers.get("Retry-After", "")
            raise TransientError(detail, retry_after=float(retry) if retry.isdigit() else None)
        raise PermanentError(detail)  # e.g. 404 channel_not_found, 410 channel_is_archived

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


@hookimpl
def register_channels() -> list[type[Channel]]:
    """The chat channel."""
    return [ChatChannel]


@hookimpl
def register_settings() -> list[Key]:
    """The settings of `[channels.chat]`, so kanal.toml's table is checked."""
    return [
        Key("channels.chat.webhook_url", "url", None, "The room's incoming webhook (https)."),
        Key("channels.chat.username", "string", None, "The name the posts appear under."),
        Key("channels.chat.timeout", "number", 10.0, "Seconds per request."),
        Key("channels.chat.allow_private", "boolean", False, "May post to a private address."),
    ]
