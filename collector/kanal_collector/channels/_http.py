"""Small helpers shared by the HTTP channels (sms, push, webhook)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from .base import PermanentError, TransientError


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def json_or_empty(response: requests.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when the body isn't one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def request_error(provider: str, exc: requests.RequestException) -> TransientError:
    """A connection failure or timeout: worth retrying."""
    kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
    return TransientError(f"{provider} request {kind}: {exc}")


def status_error(provider: str, response: requests.Response, detail: str) -> Exception:
    """429 and 5xx are transient (honouring Retry-After); other statuses are permanent."""
    message = f"{provider} answered {response.status_code}: {detail}"
    if response.status_code == 429 or response.status_code >= 500:
        return TransientError(message, retry_after=retry_after(response))
    return PermanentError(message)


def setting_float(settings: Any, key: str, default: float) -> float:
    """A positive number from the channel's settings, or ValueError naming the key."""
    value = settings.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {value!r}") from None
    if number <= 0:
        raise ValueError(f"{key} must be positive, not {value!r}")
    return number


def required(settings: Any, key: str) -> str:
    """A non-empty string setting, or ValueError naming the key."""
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is required (a string)")
    return value
