"""Report windows: `--since 30d`, `--until 2026-03-01`, ISO times → epoch-ms bounds.

A window is [since_ms, until_ms). `since` and `until` each take a duration back from
now (`90m`, `12h`, `30d`, `2w`), an ISO date (`2026-03-01`, midnight UTC) or an ISO time
(`2026-03-01T12:00:00Z`; without an offset it is UTC). "now" comes from the caller's
clock, so tests pin it.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

DEFAULT_SINCE = "30d"
_UNITS_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$", re.IGNORECASE)
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class WindowError(ValueError):
    """A window bound or duration that can't be read; `param` names the argument."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def parse_duration(text: str, *, param: str = "duration") -> int:
    """`30d` → milliseconds (units m, h, d, w; a positive whole number)."""
    match = _DURATION.match(text or "")
    if match is None:
        raise WindowError(param, f"{text!r} is not a duration; use e.g. 90m, 12h, 30d or 2w")
    amount = int(match.group(1))
    if amount <= 0:
        raise WindowError(param, "a duration must be greater than zero")
    return amount * _UNITS_MS[match.group(2).lower()]


def parse_instant(text: str, *, now_ms: int, param: str = "since") -> int:
    """A duration back from `now_ms`, an ISO date (midnight UTC) or an ISO time → ms."""
    raw = (text or "").strip()
    if not raw:
        raise WindowError(param, "must not be empty")
    if _DURATION.match(raw):
        return now_ms - parse_duration(raw, param=param)
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise WindowError(
            param, f"{raw!r} is neither a duration (30d, 12h) nor an ISO date or time "
                   "(2026-03-01, 2026-03-01T12:00:00Z)"
        ) from None
    ms = int(moment.timestamp() * 1000)
    if not 0 <= ms <= _MAX_MS:
        raise WindowError(param, f"{raw!r} is out of range")
    return ms


def parse_window(since: str | None, until: str | None, *, now_ms: int,
                 default_since: str = DEFAULT_SINCE) -> tuple[int, int]:
    """(since_ms, until_ms) from the two optional texts; `until` defaults to now.

    WindowError (a ValueError naming `since` or `until`) when either can't be read or
    the window is empty.
    """
    until_ms = now_ms if until in (None, "") else parse_instant(
        str(until), now_ms=now_ms, param="until")
    since_ms = parse_instant(default_since if since in (None, "") else str(since),
                             now_ms=now_ms, param="since")
    if since_ms >= until_ms:
        raise WindowError("since", "must be before until (the window is empty)")
    return since_ms, until_ms
