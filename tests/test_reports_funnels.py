"""Journey funnels and experiments (reports/funnels.py, reports/experiments.py) on a real
journey: the processor and timer worker on a fake clock, a dispatcher with recording
channels, delivery events, SMS callbacks, opens and clicks written as tracking writes
them. Every number is checked against counts derived here from the raw tables (outbox
keys, assignments, the people who ordered), not from the report's own queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journeys_util import Journeys
from messages_util import channel, permanent
from scipy.stats import chi2_contingency

from kanal_collector.messages import Catalog, Dispatcher, Settings
from kanal_collector.messages.callbacks import record_status
from kanal_collector.messages.eligibility import Policy
from kanal_collector.reports.experiments import experiments
from kanal_collector.reports.funnels import journey_funnel, journeys_summary
from kanal_collector.tracking.events import EMAIL_LINK_CLICKED, EMAIL_OPENED, append, email_event

HOUR = 3600
DAY = 86_400

CART_V1 = """\
    name: cart
    trigger: {event: Product Added}
    entry: {rule: every_time}
    goal: {event: Order Completed, within: 7d}
    steps:
      - wait: 1h
      - send: reminder
        channel: email
      - split:
          holdout: 30
          arms:
            - {name: a, steps: [{send: offer_a, channel: email}]}
            - {name: b, steps: [{send: offer_b, channel: sms}]}
      - wait: 1d
      - send: last_call
        channel: email
    """
# v2 keeps the steps up to the wait and ends with a differently named send.
CART_V2 = CART_V1.replace("      - send: last_call\n", "      - id: final\n"
                          "        send: last_chance\n")


def _message(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "marketing",
            "email": {"subject": f"{name} {{{{ traits.first_name }}}}", "text": name},
            "sms": {"text": name}}


class Shop:
    """The journeys environment plus channels and a dispatcher."""

    def __init__(self, tmp: Path) -> None:
        self.env = Journeys(tmp)
        self.email = channel("email")
        self.sms = channel("sms", identity="phone")
        self.catalog = Catalog.from_dicts([_message(n) for n in (
            "reminder", "offer_a", "offer_b", "last_call", "last_chance", "welcome")])
        self.dispatcher = Dispatcher(
            self.env.log.db, self.env.clock, {"email": self.email, "sms": self.sms},
            self.catalog, before_send=[], policy=Policy(), settings=Settings())

    @property
    def conn(self) -> Any:
        return self.env.conn

    def deliver(self) -> None:
        self.dispatcher.drain()
        self.env.log.process()  # delivery events onto the timelines

    def outbox(self) -> list[dict[str, Any]]:
        """Journey rows with the run id read from the idempotency key."""
        rows = []
        for oid, key, state, provider in self.conn.execute(
                "SELECT id, idempotency_key, state, provider_id FROM outbox ORDER BY id"):
            kind, journey, run, step = key.split(":", 3)
            assert kind == "journey"
            rows.append({"id": oid, "journey": journey, "run": int(run), "step": step,
                         "state": state, "provider": provider})
        return rows

    def runs(self) -> dict[int, dict[str, Any]]:
        return {int(r[0]): {"profile": int(r[1]), "entered": int(r[2]), "state": r[3],
                            "version": int(r[4])}
                for r in self.conn.execute(
                    "SELECT id, profile_id, entered_at, state, version FROM journey_runs "
                    "WHERE journey = 'cart'")}

    def arms(self, journey: str = "cart") -> dict[int, str]:
        return {int(run): str(arm) for run, arm in self.conn.execute(
            "SELECT a.run_id, a.arm FROM journey_assignments a JOIN journey_runs r "
            "ON r.id = a.run_id WHERE r.journey = ?", (journey,))}

    def tracking_event(self, name: str, row: dict[str, Any], profile: int,
                       **extra: Any) -> None:
        """An open or click as tracking/routes.py records it."""
        props = {"outbox_id": row["id"], "message": "m", "journey": row["journey"],
                 "channel": "email", "topic": None, **extra}
        append(self.conn, [email_event(self.conn, name, profile_id=profile,
                                       properties=props, now_ms=self.env.now_ms())])
        self.env.log.process()

    def close(self) -> None:
        self.dispatcher.close()
        self.env.close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    try:
        yield s
    finally:
        s.close()


def _chi2_p(a: int, na: int, b: int, nb: int) -> float:
    if a + b in (0, na + nb):
        return 1.0  # both arms at 0% (or 100%): the report's documented answer
    return float(chi2_contingency([[a, na - a], [b, nb - b]], correction=False).pvalue)


def test_funnel_and_experiment_of_a_real_journey(shop: Shop) -> None:
    env = shop.env
    env.write("cart", CART_V1)
    env.write("idle", "trigger: {event: Never Happens}\nsteps: [{send: welcome}]\n")
    env.sync()
    since = env.now_ms()
    people = [f"p{i}" for i in range(40)]
    pid = {}
    for i, user in enumerate(people):
        pid[user] = env.person(user, phone=f"+4670000{i:04d}", first_name=user,
                               subscriptions={"sms": True})
        env.track(user, "Product Added", cart_id=f"c{i}")
    revenue_of = {user: 10.0 + i for i, user in enumerate(people)}
    ordered: list[str] = []

    def order(user: str) -> None:
        env.track(user, "Order Completed", revenue=revenue_of[user])
        ordered.append(user)

    for user in people[:4]:  # before the first wait ends: converted at step 1
        order(user)
    shop.email.failures = [permanent()]  # the first email bounces
    env.advance(HOUR + 1)
    shop.deliver()

    runs = shop.runs()
    run_of = {user: next(r for r, v in runs.items() if v["profile"] == pid[user])
              for user in people}
    arms = shop.arms()
    by_arm = {arm: {r for r, a in arms.items() if a == arm} for arm in ("holdout", "a", "b")}
    assert all(by_arm.values()), by_arm  # the seeded hash gives every arm runs
    assert len(arms) == 36

    # SMS delivery reports for half of the SMS rows (the provider's callback)
    sms_rows = [r for r in shop.outbox() if r["step"] == "3.b.1" and r["state"] == "sent"]
    assert sms_rows
    sms_delivered = {r["id"] for r in sms_rows[: (len(sms_rows) + 1) // 2]}
    for row in sms_rows:
        if row["id"] in sms_delivered:
            assert record_status(shop.conn, channel="sms", sid=row["provider"],
                                 status="delivered", detail={}, now_ms=env.now_ms()) == 1
    # opens and clicks of reminders, as tracking records them
    reminders = [r for r in shop.outbox() if r["step"] == "2" and r["state"] == "sent"]
    profile_of_run = {r: v["profile"] for r, v in runs.items()}
    opened = reminders[:10]
    for row in opened:
        shop.tracking_event(EMAIL_OPENED, row, profile_of_run[row["run"]])
    shop.tracking_event(EMAIL_OPENED, opened[0], profile_of_run[opened[0]["run"]])  # again
    shop.tracking_event(EMAIL_OPENED, reminders[10], profile_of_run[reminders[10]["run"]],
                        bot=True, bot_reason="mail_proxy")  # not a person
    for row in opened[:4]:
        shop.tracking_event(EMAIL_LINK_CLICKED, row, profile_of_run[row["run"]],
                            link_url="https://shop.example/", link_index=0)
    shop.tracking_event(EMAIL_LINK_CLICKED, reminders[11], profile_of_run[reminders[11]["run"]],
                        bot=True, bot_reason="link_scanner")
    opened_ids = {r["id"] for r in opened}
    clicked_ids = {r["id"] for r in opened[:4]}

    # orders after the sends: some of every arm, holdouts included (goal.within)
    later = [u for u in people[4:] if run_of[u] in by_arm["holdout"]][:3] \
        + [u for u in people[4:] if run_of[u] in by_arm["a"]][:4] \
        + [u for u in people[4:] if run_of[u] in by_arm["b"]][:2]
    for user in later:
        order(user)
    env.advance(DAY + 1)  # the 1d wait ends: last_call for the arms' unconverted runs
    shop.deliver()
    after_last = [u for u in people[4:] if run_of[u] in by_arm["a"] | by_arm["b"]
                  and u not in ordered][:2]
    for user in after_last:  # completed runs still convert within 7d
        order(user)

    # a second version; a run on it waits at its first step
    env.write("cart", CART_V2)
    env.sync()
    newcomer = env.person("r0", phone="+46700009999")
    env.track("r0", "Product Added", cart_id="r")
    until = env.now_ms() + 1
    env.advance(60)
    env.person("q0", phone="+46700008888")  # enters after the window: not counted
    env.track("q0", "Product Added", cart_id="q")
    (env.dir / "idle.yaml").unlink()
    env.sync()

    # -- what the report must say, derived from the raw tables -------------------------
    runs = shop.runs()
    in_window = {r for r, v in runs.items() if since <= v["entered"] < until}
    assert len(in_window) == 41 and len(runs) == 42
    assert [(v["profile"], v["version"]) for v in runs.values() if v["state"] == "active"
            and since <= v["entered"] < until] == [(newcomer, 2)]
    converted_runs = {run_of[u] for u in ordered}
    revenue = sum(revenue_of[u] for u in ordered)
    rows = [r for r in shop.outbox() if r["journey"] == "cart" and r["run"] in in_window]
    sent = [r for r in rows if r["state"] == "sent"]
    assert any(r["state"] == "failed" for r in rows)  # the bounce is not counted as sent
    email_sent = {r["id"] for r in sent if r["step"] != "3.b.1"}
    delivered = email_sent | ({r["id"] for r in sent} & sms_delivered)

    summary = {row["journey"]: row for row in journeys_summary(
        shop.conn, since_ms=since, until_ms=until)}
    assert summary["idle"] == {
        "journey": "idle", "enabled": False, "entered": 0, "active": 0, "sent": 0,
        "delivered": 0, "opened": 0, "clicked": 0, "converted": 0, "revenue": 0.0,
        "conversion_rate": 0.0}
    totals = {
        "journey": "cart", "enabled": True, "entered": 41,
        "active": 1,  # the newcomer on v2, still waiting
        "sent": len(sent), "delivered": len(delivered), "opened": 10, "clicked": 4,
        "converted": len(ordered), "revenue": round(revenue, 2),
        "conversion_rate": len(ordered) / 41,
    }
    assert summary["cart"] == totals
    assert len(ordered) == 4 + len(later) + len(after_last)

    funnel = journey_funnel(shop.conn, "cart", since_ms=since, until_ms=until)
    assert funnel["journey"] == "cart" and funnel["totals"] == totals
    steps = {s["step"]: s for s in funnel["steps"]}
    # v2's steps in file order, then the step only v1 has
    assert list(steps) == ["1", "2", "3", "3.a.1", "3.b.1", "4", "final", "5"]

    v1_runs = {r for r in in_window if runs[r]["version"] == 1}
    past_first_wait = v1_runs - {run_of[u] for u in people[:4]}
    in_arms = by_arm["a"] | by_arm["b"]
    at_last = {r for r in in_arms if r in v1_runs} - {run_of[u] for u in later}
    reached = {"1": in_window, "2": past_first_wait, "3": past_first_wait,
               "3.a.1": by_arm["a"], "3.b.1": by_arm["b"], "4": in_arms, "final": set(),
               "5": at_last}
    kinds = {"1": "wait", "2": "send", "3": "split", "3.a.1": "send", "3.b.1": "send",
             "4": "wait", "final": "send", "5": "send"}
    messages = {"2": ("reminder", "email"), "3.a.1": ("offer_a", "email"),
                "3.b.1": ("offer_b", "sms"), "final": ("last_chance", "email"),
                "5": ("last_call", "email")}
    sent_by_step = Counter(r["step"] for r in sent)
    for step_id, row in steps.items():
        got = reached[step_id]
        got_converted = got & converted_runs
        step_sent = {r["id"] for r in sent if r["step"] == step_id}
        assert row == {
            "step": step_id, "kind": kinds[step_id],
            "message": messages.get(step_id, (None, None))[0],
            "channel": messages.get(step_id, (None, None))[1],
            "reached": len(got), "sent": sent_by_step.get(step_id, 0),
            "delivered": len(step_sent & delivered), "opened": len(step_sent & opened_ids),
            "clicked": len(step_sent & clicked_ids), "converted": len(got_converted),
            "revenue": round(sum(revenue_of[u] for u in ordered
                                 if run_of[u] in got_converted), 2),
        }, step_id
    # the sends really happened: every send step's runs got their message
    assert steps["2"]["sent"] == len(past_first_wait) - 1  # one bounced
    assert steps["5"]["sent"] == len(at_last) > 0
    assert steps["3.b.1"]["delivered"] == len(sms_delivered) < steps["3.b.1"]["sent"]

    # an open window on one side, and a window before everything
    assert journeys_summary(shop.conn, since_ms=since)[0]["entered"] == 42
    assert journey_funnel(shop.conn, "cart", until_ms=since)["totals"]["entered"] == 0

    # -- the experiment ----------------------------------------------------------------
    [experiment] = experiments(shop.conn, since_ms=since, until_ms=until)
    assert (experiment["journey"], experiment["step"], experiment["control"]) == (
        "cart", "3", "holdout")
    assert [a["arm"] for a in experiment["arms"]] == ["holdout", "a", "b"]
    counts = {arm: (len(ids), len(ids & converted_runs)) for arm, ids in by_arm.items()}
    n_c, conv_c = counts["holdout"]
    for arm in experiment["arms"]:
        n, conv = counts[arm["arm"]]
        arm_revenue = sum(revenue_of[u] for u in ordered if run_of[u] in by_arm[arm["arm"]])
        assert (arm["runs"], arm["conversions"], arm["revenue"]) == (
            n, conv, round(arm_revenue, 2))
        assert arm["rate"] == pytest.approx(conv / n)
        if arm["arm"] == "holdout":
            assert [arm[k] for k in ("lift", "p_value", "ci_low", "ci_high", "significant",
                                     "warning")] == [None] * 6
            continue
        rate_c, rate = conv_c / n_c, conv / n
        assert arm["lift"] == pytest.approx((rate - rate_c) / rate_c)
        assert arm["p_value"] == pytest.approx(_chi2_p(conv_c, n_c, conv, n), abs=1e-9)
        assert arm["ci_low"] < rate - rate_c < arm["ci_high"]
        assert arm["significant"] == (arm["p_value"] < 0.05)
        assert arm["warning"] is not None and arm["warning"].startswith("too few")
        assert f"holdout has {n_c} runs; {arm['arm']} has {n} runs" in arm["warning"]
    assert experiments(shop.conn, journey="idle") == []
    with pytest.raises(LookupError, match="no journey named 'nope'"):
        journey_funnel(shop.conn, "nope")


def test_split_without_holdout_compares_with_the_first_arm_in_the_file(
        tmp_path: Path) -> None:
    env = Journeys(tmp_path)
    try:
        env.write("ab", """\
            trigger: {event: Signed Up}
            goal: {event: Order Completed}
            steps:
              - split:
                  arms:
                    - {name: zeta, steps: [{wait: 1d}]}
                    - {name: alpha, weight: 2, steps: [{wait: 1d}]}
            """)
        env.write("held", """\
            trigger: {event: Signed Up}
            goal: {event: Order Completed}
            steps:
              - split:
                  holdout: 50
                  arms: [{name: only, steps: [{wait: 1d}]}]
            """)
        env.sync()
        for i in range(90):
            env.person(f"u{i}")
            env.track(f"u{i}", "Signed Up")
            if i % 3 == 0:
                env.track(f"u{i}", "Order Completed", total=5)
        arms = dict(env.conn.execute(
            "SELECT r.profile_id, a.arm FROM journey_assignments a JOIN journey_runs r "
            "ON r.id = a.run_id WHERE r.journey = 'ab'").fetchall())
        converted = {int(p) for (p,) in env.conn.execute(
            "SELECT profile_id FROM journey_conversions WHERE journey = 'ab'")}
        assert len(converted) == 30

        found = experiments(env.conn, confidence=0.9)
        assert [(e["journey"], e["control"]) for e in found] == [("ab", "zeta"),
                                                               ("held", "holdout")]
        ab = found[0]
        assert [a["arm"] for a in ab["arms"]] == ["zeta", "alpha"]  # file order
        n = {arm: sum(1 for a in arms.values() if a == arm) for arm in ("zeta", "alpha")}
        c = {arm: sum(1 for p, a in arms.items() if a == arm and p in converted)
             for arm in ("zeta", "alpha")}
        zeta, alpha = ab["arms"]
        assert (zeta["runs"], zeta["conversions"]) == (n["zeta"], c["zeta"])
        assert (alpha["runs"], alpha["conversions"]) == (n["alpha"], c["alpha"])
        assert alpha["revenue"] == round(5.0 * c["alpha"], 2)
        assert alpha["p_value"] == pytest.approx(
            _chi2_p(c["zeta"], n["zeta"], c["alpha"], n["alpha"]), abs=1e-9)
        assert alpha["significant"] == (alpha["p_value"] < 0.1)
        # a holdout ends at the split, and this goal has no `within`: it can't convert
        held = found[1]
        holdout = held["arms"][0]
        assert holdout["arm"] == "holdout" and holdout["conversions"] == 0
        assert "can't convert" in held["arms"][1]["warning"]
        with pytest.raises(ValueError, match="confidence"):
            experiments(env.conn, confidence=1.5)
        with pytest.raises(ValueError, match="until_ms"):
            experiments(env.conn, since_ms=10, until_ms=5)
    finally:
        env.close()


def test_the_delivered_events_are_the_ones_kanal_writes() -> None:
    # Every channel kind's success event counts as delivered, except SMS's send-time
    # "SMS Sent" (the provider took it), whose delivery is the callback's "SMS Delivered".
    from kanal_collector.messages.callbacks import SMS_DELIVERED
    from kanal_collector.messages.delivery import EVENT_NAMES
    from kanal_collector.reports.funnels import CLICKED_EVENTS, DELIVERED_EVENTS, OPENED_EVENTS

    good = {ok for kind, (ok, _) in EVENT_NAMES.items() if kind != "sms"}
    assert set(DELIVERED_EVENTS) == good | {SMS_DELIVERED}
    assert "SMS Sent" not in DELIVERED_EVENTS
    assert (OPENED_EVENTS, CLICKED_EVENTS) == ((EMAIL_OPENED,), (EMAIL_LINK_CLICKED,))
