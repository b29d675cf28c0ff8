"""Times, durations and reasons in plain words, for `kanal journeys why`.

A time is shown as epoch ms, UTC and (with a time zone) the person's local time; an
outbox row's reason (`deferred: quiet hours`, `no recipient`, …) as a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..messages.eligibility import (
    BUILTIN_CHANNELS,
    NO_CONSENT,
    NO_CONTENT,
    NO_OPT_IN,
    NO_PROFILE,
    NO_RECIPIENT,
    SUPPRESSED,
    UNSUBSCRIBED,
)


def zone_of(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def time_of(ms: int | None, tz: ZoneInfo | None) -> dict[str, Any] | None:
    """A time as epoch ms, UTC ISO and (with a timezone) the person's local time."""
    if ms is None:
        return None
    utc = datetime.fromtimestamp(ms / 1000, UTC)
    out: dict[str, Any] = {"ms": ms, "utc": utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if tz is not None:
        out["local"] = utc.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S%z")
    return out


def when_text(value: Mapping[str, Any] | None, tz: ZoneInfo | None) -> str:
    """A time in words: `2026-01-05 09:00:00 UTC (10:00:00 Europe/Stockholm)`."""
    if value is None:
        return "-"
    utc = datetime.fromtimestamp(int(value["ms"]) / 1000, UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    if tz is not None:
        local = utc.astimezone(tz)
        same_day = local.date() == utc.date()
        text += f" ({local.strftime('%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')} {tz.key})"
    return text


def duration(ms: int) -> str:
    """A duration in the journey files' units: 90000 → `1m30s`, 86400000 → `1d`."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


def reason_words(reason: str | None, channel: str | None = None) -> str:
    """An outbox row's reason (or a dispatcher decision's) in plain words."""
    r = (reason or "").strip()
    if r.startswith("deferred:"):
        return "deferred: " + reason_words(r[len("deferred:"):], channel)
    if r == "quiet hours" or r.startswith("quiet hours"):
        return "it fell in the person's quiet hours"
    if r.startswith("frequency cap"):
        rest = r[len("frequency cap"):].lstrip(": ")
        return ("the person had already had as many messages as a frequency cap allows"
                + (f" ({rest})" if rest else ""))
    if r.startswith("daily budget"):
        rest = r[len("daily budget"):].lstrip(": ")
        return "the day's send budget was used up" + (f" ({rest})" if rest else "")
    if r == NO_PROFILE:
        return "the person's profile was gone (forgotten) when it was due"
    if r == NO_RECIPIENT:
        identity = BUILTIN_CHANNELS.get(channel or "", (None, None))[1]
        what = identity.replace("_", " ") if identity else "address"
        return f"the person had no trusted {what} for channel {channel or '?'}"
    if r == SUPPRESSED:
        return "the person is suppressed (they asked to be forgotten)"
    if r.startswith(SUPPRESSED + ":"):
        return ("the address is on the email suppression list"
                f" ({r[len(SUPPRESSED) + 1:].strip()})")
    if r.startswith("warm-up"):
        return ("the From domain's warm-up allowed no more email that day"
                f" ({r[len('warm-up'):].lstrip(': ')})")
    if r.startswith("recipient domain throttle"):
        return ("the recipient domain's throttle allowed no more email for now"
                f" ({r[len('recipient domain throttle'):].lstrip(': ')})")
    if r.startswith("sunset"):
        return ("the person stopped reading: the sunset policy sends no more marketing"
                f" email ({r[len('sunset'):].lstrip(': ')})")
    if r.startswith(("bounced", "marked as spam")):
        return r
    if r == NO_CONSENT:
        return "the person has not given, or has withdrawn, marketing consent"
    if r == UNSUBSCRIBED:
        return "the person is unsubscribed (from the channel or the message's topic)"
    if r == NO_OPT_IN:
        return (f"the person has not opted in to marketing on channel {channel or '?'}, "
                "which needs an opt-in ([messages] opt_in)")
    if r.startswith("not queued:"):
        return "it could not be queued:" + r[len("not queued:"):]
    if r.startswith(NO_CONTENT):
        return f"the message has no content for channel {channel or '?'}"
    if r.startswith("permanent:"):
        # The provider's refusal, or the channel's own (a header with a line break).
        return "it was refused for good:" + r[len("permanent:"):]
    if r.startswith("transient:"):
        return "a temporary error, to be retried:" + r[len("transient:"):]
    return r or "no reason recorded"

