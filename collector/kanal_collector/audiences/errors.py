"""The audiences package's exceptions.

    KanalError
    └── AudienceError            an audience can't be built, synced or named
        ├── UnknownAudience      no [audiences.NAME] table of that name
        ├── AudienceBusy         another process is syncing the audience
        └── DestinationError     a destination refused or failed a request
            ├── TransientError   try again later (timeouts, 429, 5xx, rate limits)
            └── PermanentError   won't work until something changes (bad token, no access)
"""

from __future__ import annotations

from ..errors import KanalError

__all__ = ["AudienceBusy", "AudienceError", "DestinationError", "PermanentError",
           "TransientError", "UnknownAudience"]


class AudienceError(KanalError):
    """An audience can't be built, synced or named."""


class UnknownAudience(AudienceError):
    """No `[audiences.NAME]` table has that name."""


class AudienceBusy(AudienceError):
    """Another process (a `kanal serve`, a `kanal audiences sync`) is syncing it now."""


class DestinationError(AudienceError):
    """A destination refused or failed a request."""


class TransientError(DestinationError):
    """The request may succeed later (after `retry_after` seconds, when the platform
    said how long)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DestinationError):
    """The request can't succeed until something changes (credentials, access, settings)."""
