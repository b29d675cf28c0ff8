"""Posting batches to the collector's `/v1/batch`, with retries and backoff."""

from __future__ import annotations

import base64
import datetime
import email.utils
import gzip as _gzip
import logging
import random
import time
from collections.abc import Callable, Sequence

import requests

from ._exceptions import APIError, DeliveryError, TransportError
from ._message import now_iso
from ._version import __version__

log = logging.getLogger("kanal")

#: Longest wait a Retry-After header can impose; a guard against an absurd header.
MAX_RETRY_AFTER = 300.0
#: Cap of one exponential backoff step.
MAX_BACKOFF = 30.0

#: `sleep(seconds)` waits; it returns False to abandon the retries (shutting down).
Sleep = Callable[[float], object]


def _default_sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


class ShutdownInterrupted(DeliveryError):
    """Retries were abandoned because the client is shutting down."""


class Transport:
    """Sends one batch of encoded messages, retrying what may succeed later.

    Retries with exponential backoff and jitter on network errors, 408, 429 (honouring
    `Retry-After`) and 5xx; gives up at once on any other status. `sleep` and `random`
    are injected so tests never wait.
    """

    def __init__(
        self,
        write_key: str,
        host: str,
        *,
        gzip: bool = False,
        timeout: float = 15.0,
        max_retries: int = 10,
        backoff_base: float = 0.5,
        sleep: Sleep = _default_sleep,
        random: Callable[[], float] = random.random,
        session: requests.Session | None = None,
    ) -> None:
        self.url = host.rstrip("/") + "/v1/batch"
        self.gzip = gzip
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.sleep = sleep
        self.random = random
        self.session = session or requests.Session()
        token = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
        self.headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": "application/json",
            "User-Agent": f"kanal-python/{__version__}",
        }
        if gzip:
            self.headers["Content-Encoding"] = "gzip"

    def body(self, payloads: Sequence[bytes]) -> bytes:
        """The request body for encoded messages; `sentAt` is the time of this attempt."""
        data = b'{"batch":[%b],"sentAt":"%b"}' % (b",".join(payloads), now_iso().encode())
        if self.gzip:
            data = _gzip.compress(data, compresslevel=6, mtime=0)
        return data

    def post(self, payloads: Sequence[bytes]) -> requests.Response:
        """One attempt; raises APIError for any answer but a 2xx, TransportError on failure."""
        try:
            res = self.session.post(
                self.url, data=self.body(payloads), headers=self.headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TransportError(f"POST {self.url} failed: {exc}") from exc
        if 200 <= res.status_code < 300:
            return res
        raise _api_error(res)

    def send(self, payloads: Sequence[bytes]) -> requests.Response:
        """Post with retries; raises the last DeliveryError once it gives up."""
        attempt = 0
        while True:
            try:
                return self.post(payloads)
            except DeliveryError as exc:
                if not exc.retryable or attempt >= self.max_retries:
                    raise
                delay = self.backoff(attempt, getattr(exc, "retry_after", None))
                attempt += 1
                log.debug("kanal: retry %d/%d in %.2fs: %s", attempt, self.max_retries,
                          delay, exc)
                if self.sleep(delay) is False:
                    raise ShutdownInterrupted(f"shutting down while retrying: {exc}") from exc

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry `attempt + 1`: the server's Retry-After if it gave
        one, else exponential (0.5 s, 1 s, 2 s, ... capped) with equal jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        step = min(MAX_BACKOFF, self.backoff_base * 2**attempt)
        return step / 2 + self.random() * step / 2

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()


def _api_error(res: requests.Response) -> APIError:
    code, message = "unknown", res.reason or ""
    try:
        payload = res.json()
        if isinstance(payload, dict):
            code = str(payload.get("code", code))
            message = str(payload.get("message", message))
    except ValueError:
        pass
    return APIError(res.status_code, code, message,
                    retry_after=parse_retry_after(res.headers.get("Retry-After")))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are always UTC
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())
