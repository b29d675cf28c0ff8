"""Attribution credits kept by the processor equal the report that reads the log.

The kept credits (reports/credits.py) change as the processor goes; the from-scratch
report (attribute(source="log")) is their oracle. A randomized log is applied a slice at
a time — late touchpoints, anonymous visits merged into customers midway, copies of
orders (a trusted copy replacing an earlier one), bots, Kanal's own message events —
with people forgotten, the profiles rebuilt and the settings changed in between; after
each stage every model, dimension and key of many windows (whole days, parts of days,
one hour) must agree to 1e-9 relative.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import downgrade
from profiles_util import T0, Log

from kanal_collector.clock import FakeClock
from kanal_collector.own_events import own_event
from kanal_collector.profiles.privacy import forget
from kanal_collector.profiles.rebuild import rebuild
from kanal_collector.reports.attribution import (
    MODELS,
    Attribution,
    AttributionSettings,
    attribute,
    attribution_report,
)
from kanal_collector.reports.credits import AttributionStep, weights
from kanal_collector.store import credits as credit_store
from kanal_collector.store.db import transaction
from kanal_collector.store.events import append_events
from kanal_collector.store.retention import prune
from kanal_collector.store.schema import MIGRATIONS, migrate

DAY = 86_400_000
HOUR = 3_600_000
SHOP = "https://shop.example.com"
SETTINGS = AttributionSettings(goal_events=("Order Completed", "Signed Up"),
                               lookback_ms=10 * DAY, half_life_ms=3 * DAY)
CAMPAIGNS = [{"source": "newsletter", "medium": "email", "name": "spring"},
             {"source": "google", "medium": "cpc", "name": "brand"}, {"source": "partner"}]
REFERRERS = ["https://www.google.com/", "https://t.co/x", "https://blog.example.org/",
             "https://pay.example.net/back", f"{SHOP}/cart"]
MESSAGES = [("Email Opened", {"message": "welcome", "journey": "onboarding"}),
            ("Email Link Clicked", {"message": "cart", "journey": "abandoned"}),
            ("SMS Delivered", {"message": "sms1", "journey": "win_back", "channel": "sms"}),
            ("Email Link Clicked", {"message": "cart", "bot": True})]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def assert_same(got: Attribution, want: Attribution, label: str) -> None:
    assert (got.conversions, got.unattributed_conversions, got.touchpoints) == (
        want.conversions, want.unattributed_conversions, want.touchpoints), label
    assert close(got.revenue, want.revenue), label
    assert close(got.unattributed_revenue, want.unattributed_revenue), label
    assert set(got.credit) == set(want.credit), label
    for model, dimensions in want.credit.items():
        for dimension, table in dimensions.items():
            mine = got.credit[model][dimension]
            assert set(mine) == set(table), (label, model, dimension)
            for key, (credited, earned) in table.items():
                assert close(mine[key][0], credited), (label, model, dimension, key)
                assert close(mine[key][1], earned), (label, model, dimension, key)


def windows(rnd: random.Random) -> list[tuple[int, int]]:
    """Whole days, parts of days at both ends, one hour, one day, everything."""
    out = [(T0, T0 + 60 * DAY), (T0 + 10 * DAY, T0 + 20 * DAY), (T0 - DAY, T0 + 90 * DAY),
           (T0 + 5 * DAY + 7 * HOUR, T0 + 5 * DAY + 8 * HOUR),
           (T0 + 3 * DAY, T0 + 4 * DAY)]
    for _ in range(6):
        a = T0 + rnd.randrange(60 * 24) * HOUR + rnd.randrange(HOUR)
        out.append((a, a + rnd.randrange(1, 30 * 24) * HOUR + rnd.randrange(HOUR)))
    return out


def compare(log: Log, rnd: random.Random, label: str,
            settings: AttributionSettings = SETTINGS) -> int:
    """Kept against log over many windows; returns the conversions of the widest."""
    widest = 0
    for since, until in windows(rnd):
        got = attribute(log.conn, since_ms=since, until_ms=until, settings=settings,
                        source="kept")
        want = attribute(log.conn, since_ms=since, until_ms=until, settings=settings,
                         source="log")
        assert_same(got, want, f"{label} [{since}, {until})")
        widest = max(widest, want.conversions)
    return widest


@pytest.fixture
def kept_log(tmp_path: Path) -> Iterator[Log]:
    """A log whose processor keeps attribution credits with SETTINGS."""
    lg = Log(tmp_path / "kanal.db", attribution=SETTINGS)
    try:
        yield lg
    finally:
        lg.close()


class Shop:
    """A randomized shop: people visit anonymously, log in (a merge), get messages and
    order, in an order that is not time order."""

    def __init__(self, log: Log, rnd: random.Random) -> None:
        self.log, self.rnd = log, rnd
        self.n = 0
        self.orders = 0

    def person_events(self, p: int) -> None:
        rnd, log = self.rnd, self.log
        user, anon = f"u{p}", f"a{p}"
        when = [T0 + rnd.randrange(60 * 24) * HOUR for _ in range(rnd.randrange(8, 30))]
        for ts in when:
            roll = rnd.random()
            web: dict[str, Any] = {"anon": anon} if rnd.random() < 0.5 else {"user_id": user}
            if roll < 0.25:
                log.add(rnd.choice(["page", "track"]), event="Viewed", ts=ts,
                        context={"campaign": rnd.choice(CAMPAIGNS),
                                 "page": {"url": f"{SHOP}/?utm_source=x"}}, **web)
            elif roll < 0.5:
                log.add("page", ts=ts, context={"page": {"url": f"{SHOP}/",
                                                         "referrer": rnd.choice(REFERRERS)}},
                        **web)
            elif roll < 0.7:
                name, props = rnd.choice(MESSAGES)
                self.n += 1
                row = own_event(name=name, message_id=f"k{p}-{self.n}", origin="email",
                                properties=props, user_id=user, anonymous_id=None,
                                source_id=log.source, now_ms=ts)
                with transaction(log.conn):
                    append_events(log.conn, [row])
            elif roll < 0.9:
                self.order(user, ts)
            elif roll < 0.95:
                log.add("track", event="Signed Up", user_id=user, ts=ts,
                        properties={"bot": rnd.random() < 0.3})
            else:  # logs in: the anonymous visits join the customer
                log.add("identify", user_id=user, anon=anon, ts=ts, trusted=True)

    def order(self, user: str, ts: int) -> None:
        rnd, log = self.rnd, self.log
        self.orders += 1
        props: dict[str, Any] = {"order_id": f"o{self.orders}",
                                 "revenue": round(rnd.uniform(1, 300), 2)}
        context = {"campaign": rnd.choice(CAMPAIGNS)} if rnd.random() < 0.2 else None
        roll = rnd.random()
        if roll < 0.15:  # the browser's copy first, the backend's (trusted) later
            log.add("track", event="Order Completed", user_id=user, ts=ts,
                    properties=dict(props, revenue=props["revenue"] + 1), context=context)
            self.later.append((user, ts, props))
        elif roll < 0.2:
            log.add("track", event="Order Completed", user_id=user, ts=ts, trusted=True,
                    properties=dict(props, bot=True))
        else:
            log.add("track", event="Order Completed", user_id=user, ts=ts, trusted=True,
                    properties=props, context=context)

    later: list[tuple[str, int, dict[str, Any]]]

    def trusted_copies(self) -> None:
        for user, ts, props in self.later:
            self.log.add("track", event="Order Completed", user_id=user, ts=ts, trusted=True,
                         properties=props)
        self.later = []


@pytest.mark.parametrize("seed", [3, 4])
def test_kept_credits_equal_the_log(kept_log: Log, seed: int,
                                    caplog: pytest.LogCaptureFixture) -> None:
    rnd = random.Random(seed)
    log = kept_log
    shop = Shop(log, rnd)
    shop.later = []
    people = list(range(60))
    rnd.shuffle(people)
    for start in range(0, 60, 15):  # four slices, each applied before the next arrives
        for p in people[start:start + 15]:
            shop.person_events(p)
        log.process()
        compare(log, rnd, f"slice {start}")
    # Late touchpoints and trusted copies of earlier orders, for people seen before.
    for p in rnd.sample(range(60), 20):
        shop.person_events(p)
    shop.trusted_copies()
    log.process()
    assert compare(log, rnd, "late") > 100
    # Forgetting people takes exactly their share out.
    for p in rnd.sample(range(60), 6):
        forget(log.conn, f"u{p}", T0 + 90 * DAY, kind="user_id")
    compare(log, rnd, "forget")
    # A rebuild replays the log and keeps the credits with it.
    rebuild(log.conn, FakeClock(T0 / 1000 + 100 * 86_400),
            also=[AttributionStep(SETTINGS)])
    log.process()
    compare(log, rnd, "rebuild")
    # New settings: the processor rebuilds the credits; until it has, the log is read.
    other = AttributionSettings(lookback_ms=3 * DAY, half_life_ms=DAY,
                                ignore_referrers=("pay.example.net",))
    step = AttributionStep(other, build_profiles=7)
    with transaction(log.conn) as conn:
        assert step.background(conn)  # starts the rebuild: the tables are emptied
    with pytest.raises(ValueError, match="aren't kept"):
        attribute(log.conn, since_ms=T0, until_ms=T0 + DAY, settings=other, source="kept")
    report = attribution_report(log.conn, since_ms=T0, until_ms=T0 + 60 * DAY,
                                settings=other)
    assert report["source"] == "log"
    with caplog.at_level(logging.INFO, logger="kanal_collector.reports.credits"), \
            transaction(log.conn) as conn:
        while step.background(conn):
            pass
    said = [r.getMessage() for r in caplog.records]
    assert "attribution credits: 50% of the people rebuilt" in said  # progress
    assert said[-1] == "attribution credits: rebuilt; reports read them from now on"
    compare(log, rnd, "new settings", settings=other)
    report = attribution_report(log.conn, since_ms=T0, until_ms=T0 + 60 * DAY,
                                settings=other)
    assert report["source"] == "kept"


def test_every_conversion_leaves_nothing_when_taken_out(kept_log: Log) -> None:
    """After everyone is forgotten no daily row is left, not even a rounding residue."""
    rnd = random.Random(5)
    log = kept_log
    shop = Shop(log, rnd)
    shop.later = []
    for p in range(10):
        shop.person_events(p)
    log.process()
    assert log.conn.execute("SELECT COUNT(*) FROM attribution_daily").fetchone()[0] > 0
    for p in range(10):  # the customer, and the visitor who never logged in
        forget(log.conn, f"u{p}", T0 + 90 * DAY, kind="user_id")
        forget(log.conn, f"a{p}", T0 + 90 * DAY, kind="anonymous_id")
    for table in credit_store.TABLES:
        assert log.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert log.conn.execute(
        "SELECT COUNT(*) FROM profile_events WHERE key_id IS NOT NULL").fetchone()[0] == 0


def shop_of(log: Log, *, seed: int, people: int) -> Log:
    """`log` with the events of `people` people of a randomized shop, applied."""
    shop = Shop(log, random.Random(seed))
    shop.later = []
    for p in range(people):
        shop.person_events(p)
    log.process()
    return log


def test_parts_of_days_read_only_an_hour_of_conversions_at_each_end(
        kept_log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """#18: a window's parts of days come from the hourly sums, but for under an hour at
    each end; the figures are the log's."""
    log = shop_of(kept_log, seed=7, people=40)
    read: list[tuple[int, int]] = []
    credit_sums = credit_store.credit_sums

    def spy(conn: Any, since_ms: int, until_ms: int) -> Any:
        read.append((since_ms, until_ms))
        return credit_sums(conn, since_ms, until_ms)

    monkeypatch.setattr(credit_store, "credit_sums", spy)
    midnight = -(-T0 // DAY) * DAY  # UTC
    since, until = midnight + 5 * DAY + HOUR + 17_000, midnight + 40 * DAY + 22 * HOUR + 5_000
    got = attribute(log.conn, since_ms=since, until_ms=until, settings=SETTINGS,
                    source="kept")
    want = attribute(log.conn, since_ms=since, until_ms=until, settings=SETTINGS,
                     source="log")
    assert want.conversions > 50
    assert_same(got, want, "hours")
    assert read == [(since, midnight + 5 * DAY + 2 * HOUR),
                    (midnight + 40 * DAY + 22 * HOUR, until)]
    for lo, hi in ((since, midnight + 6 * DAY), (midnight + 40 * DAY, until)):
        part = attribute(log.conn, since_ms=lo, until_ms=hi, settings=SETTINGS,
                         source="log")
        assert part.conversions > 0, (lo, hi)  # both parts' hours are read


def test_shared_touchpoints_are_read_from_the_conversions_that_share_some(
        kept_log: Log) -> None:
    """#18 (migration 30): the distinct touchpoints of a window read only conversions
    that share touchpoints with the one before, through their partial index; the sum is
    the one over every conversion."""
    log = shop_of(kept_log, seed=9, people=40)
    conn = log.conn
    lookback = SETTINGS.lookback_ms
    sharing = 0
    for since in range(T0, T0 + 60 * DAY, 5 * DAY + 7 * HOUR):
        every = conn.execute(
            "SELECT COALESCE(SUM(touched - fresh), 0) FROM attribution_conversions "
            "WHERE timestamp >= ? AND timestamp <= ? AND prev_ts < ?",
            (since, since + lookback, since)).fetchone()
        assert credit_store.credited_touchpoints(conn, since, since + 90 * DAY, lookback,
                                                 7) == 7 + every[0]
        sharing += every[0]
    assert sharing > 0
    if conn.dialect.name == "sqlite":
        plan = " ".join(str(r[-1]) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(touched - fresh), 0) "
            "FROM attribution_conversions WHERE timestamp >= 0 AND timestamp < 9 "
            "AND prev_ts < 0 AND touched > fresh"))
        assert "attribution_conversions_shared" in plan, plan


def test_migration_27_sums_the_kept_credits_per_hour(kept_log: Log) -> None:
    """Migration 27 fills attribution_hourly from the credits kept before it, with what
    the processor would have kept; summed per day, the hours are the days."""
    log = shop_of(kept_log, seed=8, people=12)
    conn = log.conn

    def hourly() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(
            "SELECT hour, model, key_id, n, conversions, revenue FROM attribution_hourly "
            "ORDER BY hour, model, key_id")]

    kept = hourly()
    assert len(kept) > 100
    per_day: dict[tuple[int, int, int], list[float]] = {}
    for hour, model, kid, n, credited, earned in kept:
        entry = per_day.setdefault((hour // 24, model, kid), [0, 0.0, 0.0])
        for i, v in enumerate((n, credited, earned)):
            entry[i] += v
    daily = {(d, m, k): (n, c, r) for d, m, k, n, c, r in conn.execute(
        "SELECT day, model, key_id, n, conversions, revenue FROM attribution_daily")}
    assert set(daily) == set(per_day)
    for key, (n, credited, earned) in daily.items():
        assert per_day[key][0] == n and close(per_day[key][1], credited) \
            and close(per_day[key][2], earned), key
    with transaction(conn):
        downgrade(conn, 26)
    assert "attribution_hourly" not in conn.dialect.tables(conn)
    assert migrate(conn) == len(MIGRATIONS)
    filled = hourly()
    assert [r[:4] for r in filled] == [r[:4] for r in kept]
    for a, b in zip(filled, kept, strict=True):
        assert close(a[4], b[4]) and close(a[5], b[5]), a


def _touchpoints(conn: Any) -> list[tuple[int, ...]]:
    return sorted(tuple(int(v) for v in r) for r in conn.execute(
        "SELECT profile_id, timestamp, event_id, key_id FROM profile_events "
        "WHERE key_id IS NOT NULL"))


def test_migration_32_puts_the_touchpoints_on_their_timeline_rows(kept_log: Log) -> None:
    """Migration 32 moves every kept touchpoint's key onto its timeline row, and keeps a
    row for one whose event was pruned; the processor goes on crediting from them."""
    log = shop_of(kept_log, seed=9, people=12)
    conn = log.conn
    kept = _touchpoints(conn)
    assert len(kept) > 50
    pid, key = kept[0][0], kept[0][3]
    pruned = (pid, T0 - DAY, 10**9, key)  # its event and timeline row went in a prune
    with transaction(conn):
        downgrade(conn, 31)
        assert "key_id" not in conn.dialect.columns(conn, "profile_events")
        conn.execute("INSERT INTO attribution_touchpoints (profile_id, timestamp, event_id, "
                     "key_id) VALUES (?, ?, ?, ?)", pruned)
    assert migrate(conn) == len(MIGRATIONS)
    assert "attribution_touchpoints" not in conn.dialect.tables(conn)
    assert _touchpoints(conn) == sorted([*kept, pruned])
    with transaction(conn):
        conn.execute("DELETE FROM profile_events WHERE event_id = ?", (pruned[2],))
    shop = Shop(log, random.Random(10))
    shop.later = []
    for p in range(6):  # late touchpoints and conversions of the same people
        shop.person_events(p)
    log.process()
    assert compare(log, random.Random(11), "after migration 32") > 20


def test_a_pruned_touchpoint_is_credited_as_before(kept_log: Log) -> None:
    """A prune deletes a touchpoint's event but keeps its timeline row and key: an order
    after the prune, within the lookback, is credited to it as it would have been."""
    log = kept_log
    log.add("page", user_id="u1", ts=T0, received=T0,
            context={"campaign": CAMPAIGNS[0], "page": {"url": f"{SHOP}/?utm_source=x"}})
    log.add("page", user_id="u1", ts=T0 + 1000, received=T0 + 1000)  # direct: none
    log.process()
    done = prune(log.conn, T0 + HOUR, now_ms=T0 + 2 * DAY)
    assert done.events == 2 and done.timeline_rows == 1
    log.add("track", event="Order Completed", user_id="u1", trusted=True, ts=T0 + DAY,
            received=T0 + DAY, properties={"order_id": "o1", "revenue": 50.0})
    log.process()
    got = attribute(log.conn, since_ms=T0, until_ms=T0 + 2 * DAY, settings=SETTINGS,
                    source="kept")
    assert (got.conversions, got.unattributed_conversions, got.touchpoints) == (1, 0, 1)
    for model in got.credit:
        assert got.credit[model]["campaign"] == {"spring": (1.0, 50.0)}, model
    [(pid, ts, _, _)] = _touchpoints(log.conn)
    assert (pid, ts) == (log.pid("u1"), T0)
    # Forgetting the person takes the kept row too.
    forget(log.conn, "u1", T0 + 2 * DAY, kind="user_id")
    assert log.conn.execute("SELECT COUNT(*) FROM profile_events").fetchone()[0] == 0


def test_weights_of_each_model() -> None:
    """The kept credits' own weights (independent of the log report's code)."""
    times, at, half = [0, 5 * DAY, 10 * DAY], 10 * DAY, 5.0 * DAY
    assert weights("first_touch", times, at, half) == [1.0, 0.0, 0.0]
    assert weights("last_touch", times, at, half) == [0.0, 0.0, 1.0]
    assert weights("linear", times, at, half) == pytest.approx([1 / 3] * 3)
    assert weights("time_decay", times, at, half) == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    assert weights("position_based", times, at, half) == pytest.approx([0.4, 0.2, 0.4])
    assert weights("position_based", times[:2], at, half) == [0.5, 0.5]
    for model in MODELS:
        assert sum(weights(model, times[:1], at, half)) == 1.0
    with pytest.raises(ValueError):
        weights("nope", times, at, half)
