"""The SDK's exceptions.

The SDK never raises these into your code: it hands them to ``on_error(exc, batch)`` and
logs them. Only bad arguments raise, as plain ``TypeError``/``ValueError``.

    KanalError
     ├── DeliveryError            a batch was not delivered
     │    ├── APIError            the collector answered with an error status
     │    └── TransportError      the request failed: connection, timeout, TLS
     └── DroppedError             an event was discarded before it was sent
          ├── MessageTooLargeError    over 32 KB once encoded as JSON
          └── QueueFullError          the in-memory queue was full
"""

from __future__ import annotations


class KanalError(Exception):
    """Base class of every error the SDK reports."""


class DeliveryError(KanalError):
    """A batch was not delivered to the collector."""

    #: Whether a later attempt might succeed (network trouble, 408, 429, 5xx).
    retryable: bool = True


class APIError(DeliveryError):
    """The collector answered with an error status; `status`, `code` and `message` say which."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.retryable = status in (408, 429) or status >= 500


class TransportError(DeliveryError):
    """The request failed before an answer arrived (connection, timeout, TLS)."""


class DroppedError(KanalError):
    """An event was discarded before it was sent."""


class MessageTooLargeError(DroppedError):
    """An event was over the collector's 32 KB per-message limit once encoded."""


class QueueFullError(DroppedError):
    """An event was dropped because the in-memory queue was full."""
