"""The collector's exceptions.

    KanalError
    ├── ConfigError          bad configuration
    ├── StorageError         the database refused a write
    └── HTTPError            an answer for an HTTP client (status + machine code)
        ├── BadRequest       400
        ├── Unauthorized     401
        ├── Forbidden        403
        ├── NotFound         404
        ├── PayloadTooLarge  413
        ├── RateLimited      429 (carries Retry-After)
        └── Unavailable      503
"""

from __future__ import annotations


class KanalError(Exception):
    """Base class of every error the collector raises on purpose."""


class ConfigError(KanalError):
    """The configuration file, environment or flags are invalid."""


class StorageError(KanalError):
    """The database could not complete a write."""


class HTTPError(KanalError):
    """An error answered to an HTTP client as JSON `{"code": ..., "message": ...}`."""

    status = 500
    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}


class BadRequest(HTTPError):
    """The request or an event in it is invalid."""

    status = 400
    code = "invalid"


class Unauthorized(HTTPError):
    """The key is missing, unknown or revoked."""

    status = 401
    code = "unauthorized"


class Forbidden(HTTPError):
    """The key is valid but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(HTTPError):
    """No such resource."""

    status = 404
    code = "not_found"


class PayloadTooLarge(HTTPError):
    """The body, a message or a batch is over a limit."""

    status = 413
    code = "too_large"


class RateLimited(HTTPError):
    """Too many requests; retry after the given number of seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(HTTPError):
    """The database can't be written right now; retry later."""

    status = 503
    code = "unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}
