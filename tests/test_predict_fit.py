"""A fit on a real database (the engine under test): read, fit, score, publish; thresholds,
change events, segments, journeys, templates, rebuild, merges and the lease."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from predict_util import DAY, simulate_orders, write_profiles
from profiles_util import T0, Log

from kanal_collector.clock import FakeClock
from kanal_collector.predict import scores as scoring
from kanal_collector.predict.data import Summary, customer_from_state, summarize
from kanal_collector.predict.errors import FitBusy
from kanal_collector.predict.fit import LEASE, read_customers, rescore, run_fit
from kanal_collector.predict.rfm import STAGES
from kanal_collector.predict.settings import PredictSettings
from kanal_collector.profiles.rebuild import rebuild
from kanal_collector.profiles.segments import SegmentError, parse_segments
from kanal_collector.profiles.step import sweep
from kanal_collector.profiles.views import lookup, profile_json
from kanal_collector.store import identities as identity_store
from kanal_collector.store import leases
from kanal_collector.store import predict as store
from kanal_collector.store import profiles as profile_store
from kanal_collector.store import segments as segment_store
from kanal_collector.store.db import transaction
from kanal_collector.store.events import BODY_COLUMNS, read_body

END = T0 + 540 * DAY


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Log]:
    """1,500 simulated customers over 18 months, the clock at the end of it."""
    log = Log(tmp_path / "kanal.db", FakeClock(END / 1000))
    write_profiles(log.db, simulate_orders(1500, start_ms=T0, end_ms=END))
    yield log
    log.close()


def _fit(log: Log, **settings: Any) -> Any:
    return run_fit(log.db, PredictSettings(**settings), log.clock)


def test_a_fit_scores_every_customer_with_its_inputs(shop: Log) -> None:
    outcome = _fit(shop, currency="EUR")
    assert outcome.status == "done" and outcome.message is None
    fit = store.latest_fit(shop.conn)
    assert fit is not None and fit["modelVersion"] == "1" and fit["asOf"] == END
    record = fit["record"]
    assert record["currency"] == "EUR" and record["unit"] == "day"
    assert set(record["bgnbd"]) >= {"r", "alpha", "a", "b", "logLikelihood"}
    assert set(record["gammaGamma"]) >= {"p", "q", "gamma"}
    assert record["counts"]["customers"] == 1500
    assert sum(record["counts"]["stages"].values()) == 1500
    assert [row["repeat"] for row in record["calibration"]["rows"]][-1] == "7+"
    counts = store.score_counts(shop.conn)
    assert sum(counts["stages"].values()) == 1500 == sum(counts["risks"].values())

    pid = lookup(shop.conn, "c1")
    assert pid is not None
    details = store.score_details(shop.conn, pid)
    assert details is not None and details["fitId"] == fit["id"]
    inputs = details["inputs"]
    assert inputs["purchases"] == inputs["repeatPurchases"] + 1
    assert details["stage"] in STAGES
    # the profile shows them as computed values
    computed = profile_json(shop.conn, pid)["computed"]  # type: ignore[index]
    assert computed["stage"] == details["stage"]
    assert computed["churnRisk"] == details["churnRisk"]
    assert computed["predictedValue"] == pytest.approx(
        details["expectedOrders365d"] * inputs["expectedPurchaseValue"])


def test_scores_follow_the_models(shop: Log) -> None:
    """Every stored number is the model's formula applied to the stored inputs."""
    from kanal_collector.predict import bgnbd, gammagamma

    _fit(shop)
    record = store.latest_fit(shop.conn)["record"]  # type: ignore[index]
    params = bgnbd.BGNBD(*(record["bgnbd"][k] for k in ("r", "alpha", "a", "b")))
    spend = gammagamma.GammaGamma(*(record["gammaGamma"][k] for k in ("p", "q", "gamma")))
    for user in ("c3", "c10", "c200"):
        d = store.score_details(shop.conn, lookup(shop.conn, user))  # type: ignore[arg-type]
        assert d is not None
        i = d["inputs"]
        x, T = i["repeatPurchases"], i["daysAsCustomer"]
        t_x = T - i["daysSinceLastPurchase"]
        p = float(bgnbd.p_alive(params, [x], [t_x], [T])[0])
        assert d["probabilityActive"] == pytest.approx(p)
        e365 = float(bgnbd.expected_purchases(params, 365, [x], [t_x], [T])[0])
        assert d["expectedOrders365d"] == pytest.approx(e365)
        m = i["averageRepeatValue"]
        z = float(gammagamma.expected_spend(spend, [i["repeatPurchasesWithValue"]],
                                            [np.nan if m is None else m])[0])
        assert d["predictedValue"] == pytest.approx(e365 * z)
        if p >= 0.5:
            wait_days = (params.alpha + T) / (params.r + x)
            assert d["nextOrderAt"] == pytest.approx(i["lastPurchase"] + wait_days * DAY,
                                                     abs=1)
        else:
            assert d["nextOrderAt"] is None


def _summary(customers: int, history_days: int, repeat: int) -> Summary:
    """A summary with exactly these counts (as of day 1000)."""
    as_of = 1000
    states = {}
    for i in range(customers):
        first = as_of - (history_days if i == 0 else 1)
        orders = {"o:a": [10.0, first * DAY]}
        if i < repeat:
            orders["o:b"] = [12.0, as_of * DAY]
        states[i + 1] = {"orders": orders}
    return summarize([c for pid, s in states.items()
                      if (c := customer_from_state(pid, s)) is not None], as_of)


@pytest.mark.parametrize(("customers", "history", "repeat", "missing"), [
    (200, 90, 50, []),
    (199, 90, 50, ["199 customers with orders (need 200)"]),
    (200, 89, 50, ["89 days of order history (need 90)"]),
    (200, 90, 49, ["49 repeat customers (need 50)"]),
])
def test_minimum_data_at_the_threshold_and_one_below(customers: int, history: int,
                                                     repeat: int, missing: list[str]) -> None:
    found = scoring.sufficiency(_summary(customers, history, repeat), scoring.Thresholds())
    assert list(found.missing) == missing
    assert (found.customers, found.history_days, found.repeat_customers) == (
        customers, history, repeat)


@pytest.mark.parametrize("short", [0, 1])
def test_a_fit_below_the_thresholds_says_not_enough_data(shop: Log, short: int) -> None:
    summary = summarize(read_customers(shop.conn), END // DAY)
    repeat = int(np.count_nonzero(summary.x > 0))
    outcome = _fit(shop, min_repeat_customers=repeat + short)
    pid = lookup(shop.conn, "c1")
    computed = profile_json(shop.conn, pid)["computed"]  # type: ignore[arg-type,index]
    if short:
        assert outcome.status == "not_enough_data"
        assert outcome.message == (f"not enough data yet: {repeat} repeat customers "
                                   f"(need {repeat + 1})")
        assert computed["churnRisk"] is None and computed["predictedValue"] is None
        assert computed["stage"] is not None  # RFM needs no model
        assert computed["historicValue"] is not None
    else:
        assert outcome.status == "done"
        assert computed["churnRisk"] in ("low", "medium", "high")


def test_order_rules_are_the_profiles(tmp_path: Path) -> None:
    """Through the processor: the same order twice is one order, "NaN" is no money, two
    orders on one day are one purchase worth both."""
    log = Log(tmp_path / "kanal.db", FakeClock((T0 + 100 * DAY) / 1000))
    try:
        def order(order_id: str, day: int, revenue: Any) -> None:
            log.add(event="Order Completed", user_id="u1", trusted=True,
                    ts=T0 + day * DAY + 3_600_000,
                    properties={"order_id": order_id, "revenue": revenue})

        order("o1", 0, 10)
        order("o1", 0, 10)      # sent twice
        order("o2", 5, "NaN")   # no money
        order("o3", 9, 7.5)
        order("o4", 9, 2.5)     # the same day as o3
        log.process()
        outcome = _fit(log)
        assert outcome.status == "not_enough_data"
        d = store.score_details(log.conn, lookup(log.conn, "u1"))  # type: ignore[arg-type]
        assert d is not None
        assert d["inputs"]["orders"] == 4
        assert d["inputs"]["purchases"] == 3
        assert d["historicValue"] == 20.0
        assert d["inputs"]["averageRepeatValue"] == 10.0  # day 9: 7.5 + 2.5; day 5 none
    finally:
        log.close()


def _events(log: Log, name: str) -> list[dict[str, Any]]:
    return [{**read_body(row[1:]), "key_kind": row[0], "at": row[6], "received_at": row[7]}
            for row in log.conn.execute(
                f"SELECT key_kind, {BODY_COLUMNS} FROM events WHERE event = ? ORDER BY id",
                (name,))]


def test_changes_become_events_and_segments_follow(shop: Log) -> None:
    definitions = parse_segments({"segments": [
        {"name": "leaving", "all": [{"computed": "churn_risk", "eq": "high"}]},
        {"name": "big", "all": [{"computed": "predicted_value", "gt": 100}]},
        {"name": "risky-stage", "all": [{"computed": "stage", "in": ["at_risk"]}]},
    ]})
    now = int(shop.clock.now() * 1000)
    with transaction(shop.conn):
        segment_store.put_segment_definitions(
            shop.conn, {s.name: s.definition for s in definitions}, now)
    first = _fit(shop)
    # A first fit is the baseline: nothing changed from anything.
    assert _events(shop, "Lifecycle Stage Changed") == []
    assert first.record["published"]["segmentChanges"] > 0
    members = {name: n for name, n in segment_store.segment_counts(shop.conn).items()}
    counts = store.score_counts(shop.conn)
    assert members.get("leaving", 0) == counts["risks"].get("high", 0)
    assert members.get("risky-stage", 0) == counts["stages"].get("at_risk", 0)

    before = {pid: band for pid, band in store.bands(
        shop.conn, profile_store.profile_ids(shop.conn, limit=10**6)).items()}
    shop.clock.advance(120 * 86_400)  # four months on, 300 people ordered again
    now = int(shop.clock.now() * 1000)
    buyers = [lookup(shop.conn, f"c{i}") for i in range(300)]
    with transaction(shop.conn):
        states = profile_store.load_states(shop.conn, [p for p in buyers if p])
        for state in states.values():
            state["orders"]["o:again"] = [25.0, now]
        profile_store.save_states(shop.conn, states)
    second = _fit(shop)
    after = store.bands(shop.conn, list(before))
    stage_events = _events(shop, "Lifecycle Stage Changed")
    risk_events = _events(shop, "Churn Risk Changed")
    changed_stage = {p for p in before if before[p][0] != after[p][0]}
    changed_risk = {p for p in before if before[p][1] != after[p][1]}
    assert {e["properties"]["profileId"] for e in stage_events} == changed_stage
    assert {e["properties"]["profileId"] for e in risk_events} == changed_risk
    assert len(changed_stage) > 100 and len(changed_risk) > 10
    event = risk_events[0]
    pid = event["properties"]["profileId"]
    assert event["key_kind"] == "kanal"
    assert event["properties"]["from"] == before[pid][1]
    assert event["properties"]["to"] == after[pid][1]
    # current events: they happen now, not in the past
    assert event["at"] == event["received_at"] == int(shop.clock.now() * 1000)
    assert second.record["published"]["stageEvents"] == len(stage_events)
    entered = [e for e in _events(shop, "Segment Entered")
               if e["messageId"].endswith(f"-p{second.fit_id}")]
    assert entered  # re-evaluated in bulk after the refit, with events
    counts = store.score_counts(shop.conn)
    members = segment_store.segment_counts(shop.conn)
    assert members.get("leaving", 0) == counts["risks"].get("high", 0)
    # a sweep from scratch agrees with what the fit left
    assert sweep(shop.conn, int(shop.clock.now() * 1000), trigger=None,
                 only_time_dependent=False) == 0


def test_segment_values_of_scores_are_checked() -> None:
    with pytest.raises(SegmentError, match="stage is one of new, active"):
        parse_segments({"segments": [{"name": "x", "all": [
            {"computed": "stage", "in": ["at_risky"]}]}]})
    with pytest.raises(SegmentError, match="churn_risk is one of low, medium, high"):
        parse_segments({"segments": [{"name": "x", "all": [
            {"computed": "churn_risk", "eq": "HIGH"}]}]})
    parse_segments({"segments": [{"name": "x", "all": [
        {"computed": "next_order_at", "within": "7d"}]}]})


def test_rebuild_recomputes_the_same_scores(tmp_path: Path) -> None:
    log = Log(tmp_path / "kanal.db", FakeClock(END / 1000))
    try:
        for user, ts, value in simulate_orders(300, start_ms=T0, end_ms=END, seed=5):
            log.add(event="Order Completed", user_id=user, trusted=True, ts=ts,
                    properties={"order_id": f"{user}-{ts}", "revenue": value})
        log.process()
        definitions = parse_segments({"segments": [
            {"name": "leaving", "all": [{"computed": "churn_risk", "eq": "high"}]}]})
        with transaction(log.conn):
            segment_store.put_segment_definitions(
                log.conn, {s.name: s.definition for s in definitions}, END)
        _fit(log, min_customers=100, min_repeat_customers=20)
        log.process()
        members = segment_store.segment_counts(log.conn)
        assert members["leaving"] > 0

        def events() -> int:
            return int(log.conn.execute("SELECT count(*) FROM events").fetchone()[0])

        def by_user() -> dict[str, Any]:
            out = {}
            for pid in profile_store.profile_ids(log.conn, limit=10**6):
                user = dict(identity_store.profile_identities(log.conn, pid))["user_id"]
                d = store.score_details(log.conn, pid)
                if d is not None:
                    d.pop("inputs")
                out[user] = d
            return out

        before, logged = by_user(), events()
        rebuild(log.conn, log.clock, before_segments=rescore)
        assert by_user() == before
        assert events() == logged  # a rebuild writes nothing to the log
        assert segment_store.segment_counts(log.conn) == members
    finally:
        log.close()


def test_merges_and_forget_drop_the_scores_of_who_is_gone(shop: Log) -> None:
    _fit(shop)
    a, b = lookup(shop.conn, "c1"), lookup(shop.conn, "c2")
    assert a is not None and b is not None
    with transaction(shop.conn):
        profile_store.merge_profiles(shop.conn, a, b, event_id=None, reason="test", at=END,
                                     state=None)
    assert store.score_details(shop.conn, b) is None
    assert store.score_details(shop.conn, a) is not None


def test_one_fit_at_a_time(shop: Log) -> None:
    assert leases.acquire(shop.conn, LEASE, "someone else", shop.clock.now(), 60)
    with pytest.raises(FitBusy, match="another fit is running"):
        _fit(shop)
    assert store.latest_fit(shop.conn) is None


def test_events_reach_people_known_only_by_email(shop: Log) -> None:
    """An imported customer list has no userId: the score events name the profile, and
    the processor files them on that profile's timeline (journeys see them there)."""
    with transaction(shop.conn):
        shop.conn.execute("UPDATE identities SET kind = 'email', value = value || '@example.com'")
    _fit(shop)
    shop.clock.advance(120 * 86_400)
    now = int(shop.clock.now() * 1000)
    with transaction(shop.conn):  # some order again, so stages move
        states = profile_store.load_states(shop.conn, range(1, 301))
        for state in states.values():
            state["orders"]["o:again"] = [25.0, now]
        profile_store.save_states(shop.conn, states)
    _fit(shop)
    events = _events(shop, "Lifecycle Stage Changed")
    assert events and all("userId" not in e and "anonymousId" not in e for e in events)
    shop.process()
    on_timeline = shop.conn.execute(
        "SELECT count(*) FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE e.event = 'Lifecycle Stage Changed' "
        "AND e.body LIKE '%\"profileId\":' || pe.profile_id || ',%'").fetchone()
    assert on_timeline[0] == len(events)
