"""The KPI overview (reports/kpis.py) over a real log run through the processor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from profiles_util import T0, Log

from kanal_collector.own_events import own_event
from kanal_collector.reports.kpis import overview
from kanal_collector.store.timeline import timeline
from kanal_collector.tracking.events import append

DAY = 86_400_000
D0 = (T0 // DAY + 1) * DAY  # a UTC midnight: 2023-11-15
NAMES = ("2023-11-15", "2023-11-16", "2023-11-17")


class Shop:
    def __init__(self, path: Path) -> None:
        self.log = Log(path)
        self.added: list[tuple[int, str]] = []  # (timestamp, origin) of the shop's events
        self.own: list[tuple[int, str]] = []  # and of Kanal's own

    def add(self, kind: str, ts: int, *, origin: str = "web", **kwargs: Any) -> None:
        self.log.add(kind, ts=ts, received=ts, origin=origin, **kwargs)
        self.added.append((ts, origin))

    def delivery(self, user_id: str, ts: int) -> None:
        """A delivery event of Kanal's own about this person (not their doing)."""
        append(self.log.conn, [own_event(
            name="Email Delivered", message_id=f"kanal-outbox-{ts}-delivered", origin="email",
            properties={"outbox_id": 1}, user_id=user_id, anonymous_id=None,
            source_id=self.log.source, now_ms=ts)])
        self.own.append((ts, "email"))


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path / "kanal.db")
    H = 3_600_000
    s.add("identify", D0 - 5 * H, user_id="u4", trusted=True)  # the day before
    # day 0
    s.add("track", D0 + 1 * H, event="Page Viewed", user_id="u1")
    s.add("track", D0 + 2 * H, event="Order Completed", user_id="u2", trusted=True,
          origin="server", properties={"revenue": 20, "currency": "EUR"})
    s.add("track", D0 + 3 * H, event="Screen Viewed", user_id="u3", origin="app")
    s.add("track", D0 + 4 * H, event="Page Viewed", user_id="u3", origin="app")
    s.delivery("u4", D0 + 6 * H)  # u4 is not active: only Kanal did something
    # day 1: a goal of another name only
    s.add("track", D0 + DAY + H, event="Subscription Started", user_id="u2",
          origin="server", trusted=True, properties={"value": 7})
    # day 2
    s.add("track", D0 + 2 * DAY + 1, event="Order Completed", user_id="u1", trusted=True,
          properties={"products": [{"price": 5, "quantity": 2}, {"price": 0.5}]})
    s.add("track", D0 + 2 * DAY + 2 * H, event="Page Viewed", user_id="u1")
    s.add("page", D0 + 2 * DAY + 5 * H, anon="a1")
    s.delivery("u4", D0 + 3 * DAY - 1)
    # the day after the window
    s.add("track", D0 + 3 * DAY, event="Order Completed", user_id="u5", trusted=True,
          properties={"revenue": 99})
    s.log.process()
    try:
        yield s
    finally:
        s.log.close()


def test_overview_by_day(shop: Shop) -> None:
    # a window that starts and ends inside days: widened to the whole days
    report = overview(shop.log.conn, since_ms=D0 + 5 * 3_600_000,
                      until_ms=D0 + 2 * DAY + 3_600_000)
    assert (report["since"], report["until"]) == (D0, D0 + 3 * DAY)
    assert [d["day"] for d in report["days"]] == list(NAMES)
    expected = Counter((NAMES[(ts - D0) // DAY], origin) for ts, origin in shop.added
                       if D0 <= ts < D0 + 3 * DAY)
    origins = sorted({o for _, o in expected})
    assert origins == ["app", "server", "web"]
    for day in report["days"]:
        assert day["events"] == {o: expected[(day["day"], o)] for o in origins}
    assert report["days"][1]["events"] == {"app": 0, "server": 1, "web": 0}
    # Kanal's own deliveries are counted apart, by their origin
    assert [d["own_events"] for d in report["days"]] == [{"email": 1}, {"email": 0},
                                                          {"email": 1}]
    assert len([ts for ts, _ in shop.own if D0 <= ts < D0 + 3 * DAY]) == 2
    # u4 has deliveries on its timeline on days 0 and 2, yet is never active
    u4 = shop.log.pid("u4")
    assert u4 is not None
    assert [e.event for e in timeline(shop.log.conn, u4)].count("Email Delivered") == 2
    assert [d["active_profiles"] for d in report["days"]] == [3, 1, 2]
    assert [d["conversions"] for d in report["days"]] == [1, 0, 1]
    assert [d["revenue"] for d in report["days"]] == [20.0, 0.0, 10.5]
    assert report["totals"] == {"events": sum(expected.values()), "own_events": 2,
                                "active_profiles": 4,
                                "profiles": 6, "conversions": 2, "revenue": 30.5}


def test_other_goal_events(shop: Shop) -> None:
    report = overview(shop.log.conn, since_ms=D0, until_ms=D0 + 3 * DAY,
                      goal_events=["Subscription Started"])
    assert [(d["conversions"], d["revenue"]) for d in report["days"]] == [
        (0, 0.0), (1, 7.0), (0, 0.0)]
    assert overview(shop.log.conn, since_ms=D0, until_ms=D0 + DAY,
                    goal_events=[])["totals"]["conversions"] == 0


def test_quiet_days_are_zero_filled(shop: Shop) -> None:
    since = D0 + 10 * DAY
    report = overview(shop.log.conn, since_ms=since, until_ms=since + 2 * DAY)
    assert report["days"] == [
        {"day": "2023-11-25", "events": {}, "own_events": {}, "active_profiles": 0,
         "conversions": 0, "revenue": 0.0},
        {"day": "2023-11-26", "events": {}, "own_events": {}, "active_profiles": 0,
         "conversions": 0, "revenue": 0.0}]
    assert report["totals"] == {"events": 0, "own_events": 0, "active_profiles": 0, "profiles": 6,
                                "conversions": 0, "revenue": 0.0}


def test_an_empty_window_has_no_days(shop: Shop) -> None:
    report = overview(shop.log.conn, since_ms=D0 + 7, until_ms=D0 + 7)
    assert report["days"] == []
    assert report["totals"] == {"events": 0, "own_events": 0, "active_profiles": 0, "profiles": 6,
                                "conversions": 0, "revenue": 0.0}


def test_an_empty_database(tmp_path: Path) -> None:
    log = Log(tmp_path / "kanal.db")
    try:
        report = overview(log.conn, since_ms=D0, until_ms=D0 + 1)
        assert report["days"] == [{"day": NAMES[0], "events": {}, "own_events": {},
                                   "active_profiles": 0, "conversions": 0, "revenue": 0.0}]
        assert report["totals"]["profiles"] == 0
    finally:
        log.close()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"since_ms": D0, "until_ms": D0 - 1}, "until_ms"),
    ({"since_ms": -1, "until_ms": D0}, "since_ms"),
    ({"since_ms": "yesterday", "until_ms": D0}, "since_ms"),
    ({"since_ms": D0, "until_ms": 1.5}, "until_ms"),
    ({"since_ms": D0, "until_ms": D0, "goal_events": "Order Completed"}, "goal_events"),
])
def test_bad_windows_are_named(shop: Shop, kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        overview(shop.log.conn, **kwargs)  # type: ignore[arg-type]
