"""Small helpers shared by the HTTP destinations (meta, google_ads); the channels' own
(`Retry-After`, JSON answers, number settings) are reused from channels/_http.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from ..channels._http import json_or_empty as json_object
from ..channels._http import retry_after, setting_float
from .errors import TransientError

__all__ = ["json_object", "request_failed", "retry_after", "setting_float", "setting_int",
           "text"]


def text(settings: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    """A string setting ('' when absent), or ValueError naming the key."""
    value = settings.get(key)
    if value is None or value == "":
        if required:
            raise ValueError(f"{key} is required")
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"{key} must be a string, not {value!r}")
    return str(value).strip()


def setting_int(settings: Mapping[str, Any], key: str, default: int, *, high: int) -> int:
    """A whole number from 1 to `high`, or ValueError naming the key and the limit."""
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"{key} must be a whole number from 1 to {high:,} (the platform's "
                         f"limit), not {value!r}")
    return value


def request_failed(platform: str, exc: requests.RequestException) -> TransientError:
    """A connection failure or timeout: worth trying again."""
    kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
    return TransientError(f"{platform} request {kind}: {exc}")
