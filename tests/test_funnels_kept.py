"""Journey funnels and experiments kept per day (store/funnel_days.py) against the same
figures counted from the runs alone (`kept=False`, the oracle), on a randomized shop: two
journeys on a fake clock over a week, carts and orders at random hours, the dispatcher
sending (some sends failing), SMS delivery callbacks, opens and clicks, a new version of a
journey midway, people forgotten; days kept at random moments in between. After each
stage every window (open, whole days, parts of days, an hour) and every query of the
funnels must match."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import db_at
from messages_util import permanent
from test_reports_funnels import CART_V1, CART_V2, Shop

from kanal_collector.messages.callbacks import record_status
from kanal_collector.profiles.privacy import forget
from kanal_collector.reports.funnels import journey_funnel, journeys_summary
from kanal_collector.reports.kept_funnels import FunnelStep
from kanal_collector.store import funnel_days
from kanal_collector.store import reports as store
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.schema import migrate
from kanal_collector.tracking.events import EMAIL_LINK_CLICKED, EMAIL_OPENED

HOUR = 3600
DAY_MS = 86_400_000
WELCOME = """\
    name: welcome
    trigger: {event: Signed Up}
    entry: {rule: once}
    goal: {event: Order Completed, within: 3d}
    steps:
      - send: welcome
        channel: email
      - wait: 5h
      - if: {trait: vip, eq: true}
        then: [{send: welcome, channel: sms}]
      - wait: 1d
    """


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    try:
        yield s
    finally:
        s.close()


def _same(kept: Any, live: Any, what: str) -> None:
    """Equal rows, floats to 1e-9 relative (sums in another order)."""
    def norm(rows: Any) -> dict[Any, list[float]]:
        out: dict[Any, list[float]] = {}
        for row in rows:
            key = tuple(v for v in row if not isinstance(v, float))
            assert key not in out, (what, key)
            out[key] = [v for v in row if isinstance(v, float)]
        return out
    a, b = norm(kept), norm(live)
    assert a.keys() == b.keys(), (what, sorted(map(str, a.keys() ^ b.keys())))
    for key in a:
        for x, y in zip(a[key], b[key], strict=True):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (what, key, x, y)


def _check(conn: Any, start_ms: int, now_ms: int) -> int:
    """Compare every query on a set of windows; returns how many kept days were read."""
    d0 = start_ms // DAY_MS
    windows = [(None, None), (start_ms, None), (None, (d0 + 3) * DAY_MS),
               (d0 * DAY_MS, (d0 + 2) * DAY_MS), ((d0 + 1) * DAY_MS + 5 * 3_600_000, None),
               ((d0 + 1) * DAY_MS - 7_000, (d0 + 4) * DAY_MS + 3_600_001),
               (now_ms - 3_600_000, now_ms), (start_ms + 1, now_ms - 1)]
    for since, until in windows:
        window = {"since_ms": since, "until_ms": until}
        for journey in ("cart", "welcome"):
            at = {"journey": journey, **window}
            logged = store.logged_step_names(conn, kept=False, **at)
            assert store.logged_step_names(conn, **at) == logged
            assert store.window_versions(conn, **at) == \
                store.window_versions(conn, kept=False, **at)
            # the steps a report asks about: some logged, one never logged, some left out
            for steps in (sorted(logged), sorted(logged)[::2] + ["nowhere"], []):
                _same(store.run_groups(conn, steps=steps, **at),
                      store.run_groups(conn, steps=steps, kept=False, **at),
                      f"run_groups {at} {steps}")
        for journey in ("cart", "welcome", None):
            at = {"journey": journey, **window}
            _same(store.send_counts(conn, **at), store.send_counts(conn, kept=False, **at),
                  f"send_counts {at}")
            _same(store.arm_counts(conn, **at), store.arm_counts(conn, kept=False, **at),
                  f"arm_counts {at}")
        _same([(j, *t) for j, t in store.journey_totals(conn, **window).items()],
              [(j, *t) for j, t in store.journey_totals(conn, kept=False, **window).items()],
              f"totals {window}")
    return int(conn.execute("SELECT COUNT(DISTINCT day) FROM funnel_runs").fetchone()[0])


@pytest.mark.parametrize("seed", [1, 2])
def test_kept_funnels_equal_the_runs(shop: Shop, seed: int) -> None:
    rng = random.Random(seed)
    env = shop.env
    env.write("cart", CART_V1)
    env.write("welcome", WELCOME)
    env.sync()
    keeper = FunnelStep(settle=0)
    start = env.now_ms()
    people: list[str] = []
    forgotten: set[str] = set()
    kept_days_read = 0

    def someone() -> str | None:
        left = [p for p in people if p not in forgotten]
        return rng.choice(left) if left else None

    for stage in range(7):
        for _ in range(14):
            roll = rng.random()
            if roll < 0.25:
                user = f"u{len(people)}"
                people.append(user)
                env.person(user, phone=f"+4670100{len(people):04d}", first_name=user,
                           vip=rng.random() < 0.4, subscriptions={"sms": True})
                env.track(user, "Signed Up")
                env.track(user, "Product Added", cart_id=f"c{user}")
            elif roll < 0.4 and (user := someone()):
                env.track(user, "Product Added", cart_id=f"c{user}{rng.random()}")
            elif roll < 0.55 and (user := someone()):
                env.track(user, "Order Completed", revenue=round(rng.uniform(5, 200), 2))
            elif roll < 0.7:
                shop.email.failures = [permanent()] if rng.random() < 0.2 else []
                shop.deliver()
            elif roll < 0.8:
                sent = [r for r in shop.outbox() if r["state"] == "sent"]
                if sent:
                    row = rng.choice(sent)
                    profile = int(shop.conn.execute(
                        "SELECT profile_id FROM outbox WHERE id = ?", (row["id"],)
                    ).fetchone()[0])
                    if row["step"] == "3.b.1" or row["provider"] and rng.random() < 0.3:
                        record_status(shop.conn, channel="sms", sid=row["provider"],
                                      status="delivered", detail={}, now_ms=env.now_ms())
                        env.log.process()
                    else:
                        name = EMAIL_OPENED if rng.random() < 0.6 else EMAIL_LINK_CLICKED
                        extra = {"link_url": "https://shop.example/", "link_index": 0} \
                            if name == EMAIL_LINK_CLICKED else {}
                        shop.tracking_event(name, row, profile, **extra)
            elif roll < 0.9:
                keeper.keep(shop.conn, most=rng.randint(1, 6))
            else:
                env.advance(rng.randint(1, 9) * HOUR + rng.randint(0, 3599))
        if stage == 3:
            env.write("cart", CART_V2)
            env.sync()
        if stage in (2, 5) and (user := someone()):
            forget(shop.conn, user, env.now_ms())
            forgotten.add(user)
        kept_days_read += _check(shop.conn, start, env.now_ms())
        env.advance(rng.randint(8, 20) * HOUR)
    keeper.keep(shop.conn)
    assert not funnel_days.marked(shop.conn, journey=None, first_day=None, last_day=None)
    kept_days_read += _check(shop.conn, start, env.now_ms())
    assert kept_days_read > 0  # the kept rows were read, not only the runs
    # The reports on top: the same with every day kept as with none.
    funnel = journey_funnel(shop.conn, "cart")
    summary = journeys_summary(shop.conn)
    shop.conn.execute("DELETE FROM funnel_runs")
    shop.conn.execute("DELETE FROM funnel_sends")
    shop.conn.execute("DELETE FROM funnel_arms")
    shop.conn.execute(f"INSERT INTO journey_marks (journey, day, tx) SELECT DISTINCT "
                      f"journey, entered_at / {DAY_MS}, 0 FROM journey_runs")
    assert journey_funnel(shop.conn, "cart") == funnel
    assert journeys_summary(shop.conn) == summary
    assert funnel["totals"]["entered"] > 0 and funnel["totals"]["sent"] > 0


def test_a_day_changed_while_it_is_kept_stays_marked(shop: Shop) -> None:
    """The marks read before a day is counted are the ones deleted after: a mark
    written in between (another transaction's) survives."""
    env = shop.env
    env.write("welcome", WELCOME)
    env.sync()
    env.person("ann", first_name="Ann")
    env.track("ann", "Signed Up")
    conn = shop.conn
    (journey,) = {r["journey"] for r in env.runs()}
    day = env.now_ms() // DAY_MS
    conn.execute("INSERT INTO journey_marks (journey, day, tx) VALUES (?, ?, 5)",
                 (journey, day))
    txs = funnel_days.mark_txs(conn, journey, day)
    store.keep_day(conn, journey, day)
    conn.execute("INSERT INTO journey_marks (journey, day, tx) VALUES (?, ?, 6)",
                 (journey, day))
    funnel_days.unmark(conn, journey, day, txs)
    assert funnel_days.marked(conn, journey=None, first_day=None, last_day=None) == \
        {(journey, day)}
    assert funnel_days.mark_txs(conn, journey, day) == [6]


def test_a_window_ending_now_reads_its_last_day_kept(shop: Shop) -> None:
    """A window's last day is read from its kept rows when no run entered after the
    window's end that day (a window ending now); with a run after the end it is counted
    from the runs up to the end. Both equal the runs alone."""
    env = shop.env
    env.write("welcome", WELCOME)
    env.sync()
    env.advance(DAY_MS // 1000 - env.now_ms() % DAY_MS // 1000 + 3 * HOUR)  # 03:00 UTC
    for i in range(3):
        env.person(f"u{i}", first_name=f"U{i}")
        env.track(f"u{i}", "Signed Up")
        env.advance(2 * HOUR)
    FunnelStep(settle=0).keep(shop.conn)
    now = env.now_ms()
    day = now // DAY_MS
    since = now - 3 * DAY_MS
    between = day * DAY_MS + 4 * 3_600_000  # after the first sign-up, before the others
    for until, live_end in ((now, False), (now + 1, False), (between, True)):
        for journey in ("welcome", None):
            plan = store._plan(shop.conn, journey, since, until, True)
            assert ((journey, day * DAY_MS, until) in plan.live) == live_end, until
            assert (plan.last_day == day) != live_end
        window = {"since_ms": since, "until_ms": until}
        _same([(j, *t) for j, t in store.journey_totals(shop.conn, **window).items()],
              [(j, *t) for j, t in store.journey_totals(shop.conn, kept=False,
                                                        **window).items()], f"{window}")
        _same(store.send_counts(shop.conn, journey="welcome", **window),
              store.send_counts(shop.conn, journey="welcome", kept=False, **window),
              f"sends {window}")
    entered = store.journey_totals(shop.conn, since_ms=since, until_ms=between)
    assert entered["welcome"][0] == 1


_DAY0 = 20_000
_RUN = ("INSERT INTO journey_runs (id, journey, version, profile_id, state, step, entered_at, "
        "updated_at) VALUES (7, 'cart', 1, 1, 'active', '1', {at}, {at})")
_SEND = ("INSERT INTO outbox (id, idempotency_key, profile_id, message, kind, journey, step, "
         "state, next_attempt_at, created_at, updated_at) VALUES "
         "(70, 'journey:cart:7:2', 1, 'm', 'marketing', 'cart', '2', '{state}', 0, 0, 0)")
_AT = _DAY0 * DAY_MS + 5


@pytest.mark.parametrize(("before", "write", "marks"), [
    ([], _RUN.format(at=_AT), True),
    ([_RUN.format(at=_AT)], "UPDATE journey_runs SET state = 'completed' WHERE id = 7", True),
    ([_RUN.format(at=_AT)], "UPDATE journey_runs SET step = '2' WHERE id = 7", True),
    ([_RUN.format(at=_AT)], "UPDATE journey_runs SET updated_at = 9 WHERE id = 7", False),
    ([_RUN.format(at=_AT)], "DELETE FROM journey_runs WHERE id = 7", True),
    ([_RUN.format(at=_AT)], "INSERT INTO journey_log (run_id, at, step, what) "
     "VALUES (7, 1, '2', 'entered')", True),
    ([_RUN.format(at=_AT)], "INSERT INTO journey_log (run_id, at, what) "
     "VALUES (7, 1, 'note')", False),
    ([_RUN.format(at=_AT), "INSERT INTO journey_log (run_id, at, step, what) "
      "VALUES (7, 1, '2', 'entered')"], "DELETE FROM journey_log", True),
    ([_RUN.format(at=_AT)], "INSERT INTO journey_conversions (run_id, journey, version, "
     "profile_id, event, revenue, at) VALUES (7, 'cart', 1, 1, 'Order', 5.0, 1)", True),
    ([_RUN.format(at=_AT), "INSERT INTO journey_conversions (run_id, journey, version, "
      "profile_id, event, revenue, at) VALUES (7, 'cart', 1, 1, 'Order', 5.0, 1)"],
     "UPDATE journey_conversions SET revenue = 6.0", True),
    ([_RUN.format(at=_AT), "INSERT INTO journey_conversions (run_id, journey, version, "
      "profile_id, event, revenue, at) VALUES (7, 'cart', 1, 1, 'Order', 5.0, 1)"],
     "DELETE FROM journey_conversions", True),
    ([_RUN.format(at=_AT)], "INSERT INTO journey_assignments (run_id, step, arm, at) "
     "VALUES (7, '3', 'a', 1)", True),
    ([_RUN.format(at=_AT), "INSERT INTO journey_assignments (run_id, step, arm, at) "
      "VALUES (7, '3', 'a', 1)"], "DELETE FROM journey_assignments", True),
    ([_RUN.format(at=_AT), _SEND.format(state="sending")],
     "UPDATE outbox SET state = 'sent' WHERE id = 70", True),
    ([_RUN.format(at=_AT), _SEND.format(state="sent")],
     "UPDATE outbox SET state = 'failed' WHERE id = 70", True),
    ([_RUN.format(at=_AT), _SEND.format(state="queued")],
     "UPDATE outbox SET state = 'sending' WHERE id = 70", False),
    ([_RUN.format(at=_AT), _SEND.format(state="sent")], "DELETE FROM outbox", True),
    ([_RUN.format(at=_AT), _SEND.format(state="sent")],
     "INSERT INTO outbox_engagement (outbox_id, stage) VALUES (70, 'opened')", True),
    ([_RUN.format(at=_AT), _SEND.format(state="sent"),
      "INSERT INTO outbox_engagement (outbox_id, stage) VALUES (70, 'opened')"],
     "DELETE FROM outbox_engagement", True),
    # a key that isn't a journey send's (or names no run) marks nothing, and fails nothing
    ([_RUN.format(at=_AT), _SEND.format(state="sending").replace("journey:cart:7:2", "x:y")],
     "UPDATE outbox SET state = 'sent' WHERE id = 70", False),
    ([_RUN.format(at=_AT), _SEND.format(state="sending").replace(":7:", ":x7:")],
     "UPDATE outbox SET state = 'sent' WHERE id = 70", False),
    ([_RUN.format(at=_AT), _SEND.format(state="sending").replace(":7:", ":8:")],
     "UPDATE outbox SET state = 'sent' WHERE id = 70", False),
])
def test_each_write_a_funnel_reads_marks_its_runs_day(tmp_path: Path, before: list[str],
                                                      write: str, marks: bool) -> None:
    db = Database(db_at(tmp_path / "kanal.db"))
    try:
        conn = db.conn()
        migrate(conn)
        with transaction(conn):
            for sql in before:
                conn.execute(sql)
        conn.execute("DELETE FROM journey_marks")
        with transaction(conn):
            conn.execute(write)
        found = funnel_days.marked(conn, journey=None, first_day=None, last_day=None)
        assert found == ({("cart", _DAY0)} if marks else set())
    finally:
        db.close()
