"""What a channel plugin is: the contract between the dispatcher and every channel.

A channel delivers one rendered message to one recipient. Built-in channels (email,
sms, push, webhook, console) and third-party ones implement the same class and are
registered through the same pluggy hook (`register_channels`, see hookspecs.py).

    ChannelError
    ├── TransientError   try again later (timeouts, 429, 5xx, a greylisting SMTP 4xx)
    └── PermanentError   never retry (bad recipient, 4xx rejection, bounce at send time)
        └── RecipientGone  the recipient identity no longer exists (a push
                           subscription the push service answers 404/410 for)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ChannelError(Exception):
    """A delivery failed."""


class TransientError(ChannelError):
    """The delivery may succeed later; the dispatcher retries with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """The delivery can never succeed; the outbox row ends `failed`."""


class RecipientGone(PermanentError):
    """The recipient is gone for good: the dispatcher removes it from the person."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one recipient, as the dispatcher hands it over.

    `content` holds what the renderer made for this channel's kind:
    email: subject, html, text; sms: text; push: title, body (and data);
    webhook: payload (a JSON-able dict); console: whatever the kind's content is.
    `idempotency_key` is stable for this outbox row: pass it to providers that accept
    one, so a retry after a crash can't send twice.
    """

    outbox_id: int
    idempotency_key: str
    recipient: str
    content: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    """What a provider said when it accepted the message."""

    provider_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


class Channel(ABC):
    """Base class of channel plugins.

    Subclasses set `name` (what journeys and config call it, e.g. "email"), `kind`
    (which rendered content it takes: email, sms, push, webhook or console), and
    `recipient_identity` (the profile identity it sends to: email, phone, push_token, or
    None for channels whose address is in their settings, like webhook and console).
    `settings` is the channel's table of kanal.toml (`[channels.NAME]`) with secrets
    already resolved from the environment. `rate_per_second` (settings key
    `rate_per_second`) limits how fast the dispatcher hands it messages.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    recipient_identity: ClassVar[str | None] = None
    supports_idempotency_key: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings

    @classmethod
    def configured(cls, name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Class attributes (`kind`, `recipient_identity`) that the channel configured as
        `[channels.NAME]` with `settings` takes instead of its class's; none by default.
        ValueError for settings that can't be."""
        return {}

    @abstractmethod
    def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver one message, or raise TransientError / PermanentError."""

    def close(self) -> None:  # noqa: B027 - optional: most channels hold nothing
        """Release connections (called when the dispatcher stops)."""
