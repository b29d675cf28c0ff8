"""Injected time: code that waits or schedules asks a clock, tests move a fake one."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    """Where "now" comes from."""

    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Wait up to `seconds`, or until `wake` is set; True when woken."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        return time.time()

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Wait up to `seconds`, or until `wake` is set; True when woken."""
        if wake is None:
            time.sleep(seconds)
            return False
        return wake.wait(seconds)


class FakeClock:
    """A clock that only moves when a test says so."""

    def __init__(self, start: float | datetime = 1_700_000_000.0) -> None:
        if isinstance(start, datetime):
            start = start.timestamp()
        self._now = float(start)
        self._lock = threading.Condition()

    def now(self) -> float:
        """The fake "now", in seconds since the epoch."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake anyone sleeping on this clock."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            self._now += seconds
            self._lock.notify_all()

    def set(self, when: float | datetime) -> None:
        """Jump to an absolute time (never backwards)."""
        value = when.timestamp() if isinstance(when, datetime) else float(when)
        with self._lock:
            if value < self._now:
                raise ValueError("a fake clock never moves backwards")
            self._now = value
            self._lock.notify_all()

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Return at once: fake time passes only through `advance`."""
        return bool(wake is not None and wake.is_set())


def utc_iso(seconds: float) -> str:
    """ISO 8601 with milliseconds and a Z, the form every stored timestamp takes."""
    dt = datetime.fromtimestamp(seconds, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


_EPOCH_DAY = date(1970, 1, 1).toordinal()


def utc_iso_ms(ms: int) -> str:
    """`utc_iso` of epoch milliseconds, exactly: integer arithmetic, no float on the way
    (which far from 1970 can't hold every millisecond). ValueError outside years 1-9999."""
    minutes, rest = divmod(ms, 60_000)
    return f"{_minute_iso(minutes)}{rest // 1000:02d}.{rest % 1000:03d}Z"


@lru_cache(maxsize=4096)  # the event log reads and writes these for every event
def _minute_iso(minutes: int) -> str:
    """2026-05-04T10:15: of a minute since the epoch (date and strftime are slow)."""
    try:
        day = date.fromordinal(_EPOCH_DAY + minutes // 1440)
    except OverflowError:
        raise ValueError(f"minute {minutes} is outside years 1-9999") from None
    minute = minutes % 1440
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{minute // 60:02d}:{minute % 60:02d}:"
