"""Local time math: zones, local days and daily windows across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from kanal_collector.config import Config
from kanal_collector.localtime import (
    Window,
    at_local,
    day_start,
    default_timezone,
    is_zone,
    parse_clock,
    parse_days,
    zone,
    zone_name,
)

BERLIN = zone("Europe/Berlin")
NEW_YORK = zone("America/New_York")


def utc(text: str) -> int:
    """Epoch ms of a UTC time written as ISO."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("tz", "day", "clock", "expected"), [
    # An ordinary day: CET is UTC+1, CEST UTC+2.
    (BERLIN, date(2026, 3, 27), "09:00", "2026-03-27T08:00"),
    (BERLIN, date(2026, 3, 30), "09:00", "2026-03-30T07:00"),
    # Spring forward (02:00 → 03:00): 02:30 does not exist → the first instant after.
    (BERLIN, date(2026, 3, 29), "02:30", "2026-03-29T01:00"),
    (BERLIN, date(2026, 3, 29), "02:00", "2026-03-29T01:00"),
    (BERLIN, date(2026, 3, 29), "03:00", "2026-03-29T01:00"),
    # Fall back (03:00 → 02:00): 02:30 happens twice → the first (still CEST).
    (BERLIN, date(2026, 10, 25), "02:30", "2026-10-25T00:30"),
    (BERLIN, date(2026, 10, 25), "03:00", "2026-10-25T02:00"),
    (NEW_YORK, date(2026, 3, 8), "02:15", "2026-03-08T07:00"),
    (NEW_YORK, date(2026, 11, 1), "01:30", "2026-11-01T05:30"),
    (NEW_YORK, date(2026, 11, 1), "02:00", "2026-11-01T07:00"),
])
def test_local_wall_times_across_dst(tz: ZoneInfo, day: date, clock: str,
                                     expected: str) -> None:
    assert at_local(day, parse_clock(clock), tz) == utc(expected)


def test_local_days_last_23_or_25_hours_over_dst() -> None:
    noon = utc("2026-03-29T10:00")
    assert day_start(noon, BERLIN) == utc("2026-03-28T23:00")
    assert day_start(noon, BERLIN, 1) == utc("2026-03-29T22:00")  # a 23-hour day
    autumn = utc("2026-10-25T10:00")
    assert day_start(autumn, BERLIN, 1) - day_start(autumn, BERLIN) == 25 * 3600_000
    assert day_start(noon, BERLIN, -6) == utc("2026-03-22T23:00")


def test_a_day_window_inside_and_next_opening() -> None:
    weekdays = Window.parse("09:00", "18:00", ["mon", "tue", "wed", "thu", "fri"])
    wednesday_noon = utc("2026-03-25T11:00")  # 12:00 in Berlin
    assert weekdays.open_until(wednesday_noon, BERLIN) == utc("2026-03-25T17:00")
    evening = utc("2026-03-25T18:30")  # 19:30
    assert weekdays.open_until(evening, BERLIN) is None
    assert weekdays.next_open(evening, BERLIN) == utc("2026-03-26T08:00")
    # Friday evening → Monday, which is after the spring change (UTC+2 by then).
    assert weekdays.next_open(utc("2026-03-27T18:00"), BERLIN) == utc("2026-03-30T07:00")
    # The start is inside, the end is not.
    assert weekdays.open_until(utc("2026-03-26T08:00"), BERLIN) is not None
    assert weekdays.open_until(utc("2026-03-26T17:00"), BERLIN) is None


def test_a_window_over_midnight_belongs_to_the_day_it_opens() -> None:
    nights = Window.parse("22:00", "02:00", ["mon"])
    assert nights.overnight
    # Tuesday 01:00 Berlin: Monday's window is still open.
    assert nights.open_until(utc("2026-03-24T00:00"), BERLIN) == utc("2026-03-24T01:00")
    # Tuesday 23:00: Tuesday opens no window; the next is Monday 22:00.
    tuesday_late = utc("2026-03-24T22:00")
    assert nights.open_until(tuesday_late, BERLIN) is None
    assert nights.next_open(tuesday_late, BERLIN) == utc("2026-03-30T20:00")


def test_a_window_start_in_the_spring_gap_opens_after_it() -> None:
    early = Window.parse("02:30", "04:00")
    saturday = utc("2026-03-28T11:00")
    assert early.next_open(saturday, BERLIN) == utc("2026-03-29T01:00")  # 03:00 CEST
    autumn = Window.parse("02:30", "05:00")
    assert autumn.next_open(utc("2026-10-24T11:00"), BERLIN) == utc("2026-10-25T00:30")
    # A window DST leaves empty that day (02:00-03:00 on 29 March) opens the day after.
    gap = Window.parse("02:00", "03:00")
    assert gap.next_open(saturday, BERLIN) == utc("2026-03-30T00:00")


@pytest.mark.parametrize(("name", "fallback", "expected"), [
    ("Europe/Berlin", "UTC", "Europe/Berlin"),
    ("Mars/Olympus", "America/New_York", "America/New_York"),
    ("", "UTC", "UTC"),
    (None, "Asia/Tokyo", "Asia/Tokyo"),
    (42, "UTC", "UTC"),
    ("../etc/passwd", "UTC", "UTC"),
    ("Europe", "UTC", "UTC"),
])
def test_a_person_zone_falls_back_when_missing_or_invalid(name: object, fallback: str,
                                                          expected: str) -> None:
    assert zone_name(name, fallback) == expected
    assert is_zone(name) == (expected == name)


@pytest.mark.parametrize(("value", "words"), [
    ("9:00", "time of day"), ("24:00", "time of day"), ("09:60", "time of day"),
    ("nine", "time of day"), (1080, "quotes"), (None, "time of day"),
])
def test_bad_clock_times(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_clock(value)


def test_days_and_bad_windows() -> None:
    assert parse_days(["Mon", "sunday"]) == frozenset({0, 6})
    assert parse_days("sat") == frozenset({5})
    for bad in ([], ["funday"], [1], {"mon": 1}):
        with pytest.raises(ValueError, match="day"):
            parse_days(bad)
    with pytest.raises(ValueError, match="from and to must differ"):
        Window.parse("09:00", "09:00")
    with pytest.raises(ValueError, match="^to: "):
        Window.parse("09:00", "25:00")
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Town'"):
        zone("Nowhere/Town")


def test_default_timezone_from_the_config() -> None:
    assert default_timezone(Config()) == "UTC"
    assert default_timezone(Config(sections={"journeys": {
        "default_timezone": "Europe/Berlin"}})) == "Europe/Berlin"
    with pytest.raises(ValueError, match=r"\[journeys\] default_timezone"):
        default_timezone(Config(sections={"journeys": {"default_timezone": "Berlin"}}))
