"""Local time of people: time zones, local days and daily windows, with DST done right.

Times are epoch milliseconds (the store's unit). A person's time zone is an IANA name
(`Europe/Berlin`); an unknown or missing one falls back to a configured zone, then UTC.

Daylight saving time: a local time that does not exist (the hour skipped when clocks
spring forward) means the first instant after the gap; a local time that happens twice
(clocks fall back) means its first occurrence. Local days are calendar days in the zone,
so a day may last 23 or 25 hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import Config

UTC_NAME = "UTC"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names in `days:` lists, Monday first (datetime.weekday() order)."""
_ALL_DAYS = frozenset(range(7))
_DAY_NAMES = {**{d: i for i, d in enumerate(WEEKDAYS)},
              **{d: i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday",
                                            "friday", "saturday", "sunday"))}}


@lru_cache(maxsize=1024)
def _lookup(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone(name: Any) -> ZoneInfo:
    """The zone called `name`; ValueError when it is not an IANA time zone name."""
    found = _lookup(name) if isinstance(name, str) and name else None
    if found is None:
        raise ValueError(f"unknown time zone {name!r} (an IANA name like Europe/Berlin)")
    return found


def is_zone(name: Any) -> bool:
    """True when `name` is a known IANA time zone name."""
    return isinstance(name, str) and bool(name) and _lookup(name) is not None


def zone_name(preferred: Any, fallback: str = UTC_NAME) -> str:
    """`preferred` when it is a valid zone name (a person's timezone), else `fallback`."""
    return preferred if is_zone(preferred) else fallback


def default_timezone(config: Config) -> str:
    """`[journeys] default_timezone` of kanal.toml (validated), else UTC."""
    value = config.section("journeys").get("default_timezone", UTC_NAME)
    if not is_zone(value):
        raise ValueError(f"[journeys] default_timezone: unknown time zone {value!r} "
                         f"(an IANA name like Europe/Berlin)")
    return str(value)


def parse_clock(value: Any) -> int:
    """A local time of day "HH:MM" (24-hour) as minutes after midnight; ValueError if not."""
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit()
                and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            return int(hours) * 60 + int(minutes)
    hint = ""
    if isinstance(value, int) and not isinstance(value, bool):
        hint = " (put it in quotes: YAML reads an unquoted 18:00 as a number)"
    elif isinstance(value, time):  # kanal.toml: an unquoted 21:00:00 is a TOML time
        value = value.isoformat()
        hint = f" (put it in quotes: \"{value[:5]}\")"
    raise ValueError(f"a time of day like \"09:00\", not {value!r}{hint}")


def parse_days(value: Any) -> frozenset[int]:
    """A list of day names (mon..sun) as weekday numbers; ValueError if not."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"a list of days like [mon, tue, wed], not {value!r}")
    out = set()
    for day in value:
        number = _DAY_NAMES.get(day.strip().lower()) if isinstance(day, str) else None
        if number is None:
            raise ValueError(f"a day is one of {', '.join(WEEKDAYS)}, not {day!r}")
        out.add(number)
    return frozenset(out)


def local_date(ms: int, tz: ZoneInfo) -> date:
    """The calendar date in `tz` at an instant."""
    return datetime.fromtimestamp(ms / 1000, tz).date()


def at_local(day: date, minutes: int, tz: ZoneInfo) -> int:
    """The instant (ms) of a local wall time on a local date (DST rules in the docstring)."""
    naive = datetime.combine(day, time(minutes // 60, minutes % 60))
    first = naive.replace(tzinfo=tz).timestamp()  # fold=0: the first occurrence
    if datetime.fromtimestamp(first, tz).replace(tzinfo=None) == naive:
        return int(first * 1000)
    # In a gap: fold=0 and fold=1 read the wall time with the offsets before and after
    # the transition; the transition (the first instant after the gap) lies between.
    other = naive.replace(tzinfo=tz, fold=1).timestamp()
    lo, hi = int(min(first, other)), int(max(first, other))
    while hi - lo > 1:  # lo is before the wall time, hi after it (in whole seconds)
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi * 1000


def day_start(ms: int, tz: ZoneInfo, days: int = 0) -> int:
    """The start of the local day `days` after the one holding `ms` (negative: before)."""
    return at_local(local_date(ms, tz) + timedelta(days=days), 0, tz)


@dataclass(frozen=True)
class Window:
    """A daily local-time window from `start` to `end` (minutes after midnight).

    `end` before `start` makes a window over midnight, which belongs to the day it
    opens on: `days` are the days a window may open.
    """

    start: int
    end: int
    days: frozenset[int] = _ALL_DAYS

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not 0 <= value < 24 * 60:
                raise ValueError(f"{name} must be minutes after midnight (0-1439)")
        if self.start == self.end:
            raise ValueError("from and to must differ")
        if not self.days or not self.days <= _ALL_DAYS:
            raise ValueError("days must name at least one day of the week")

    @classmethod
    def parse(cls, start: Any, end: Any, days: Iterable[Any] | None = None) -> Window:
        """A window from "HH:MM" texts and optional day names; ValueError naming the field."""
        try:
            first = parse_clock(start)
        except ValueError as exc:
            raise ValueError(f"from: {exc}") from None
        try:
            last = parse_clock(end)
        except ValueError as exc:
            raise ValueError(f"to: {exc}") from None
        if first == last:
            raise ValueError("from and to must differ")
        if days is None:
            return cls(first, last)
        try:
            return cls(first, last, parse_days(days))
        except ValueError as exc:
            raise ValueError(f"days: {exc}") from None

    @property
    def overnight(self) -> bool:
        """True when the window runs over midnight."""
        return self.end < self.start

    def _span(self, day: date, tz: ZoneInfo) -> tuple[int, int]:
        start = at_local(day, self.start, tz)
        end_day = day + timedelta(days=1) if self.overnight else day
        return start, at_local(end_day, self.end, tz)

    def open_until(self, ms: int, tz: ZoneInfo) -> int | None:
        """When the window that is open at `ms` closes (ms), or None when it is closed."""
        today = local_date(ms, tz)
        for day in (today - timedelta(days=1), today):
            if day.weekday() in self.days:
                start, end = self._span(day, tz)
                if start <= ms < end:
                    return end
        return None

    def next_open(self, ms: int, tz: ZoneInfo) -> int:
        """The next time (ms) after `ms` the window opens."""
        today = local_date(ms, tz)
        for offset in range(9):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                start, end = self._span(day, tz)
                if start > ms and end > start:  # a window DST made empty is no window
                    return start
        raise ValueError("the window never opens")  # pragma: no cover (days is not empty)
