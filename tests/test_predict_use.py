"""Using the scores: the admin API, the dashboard page, journeys (trigger and condition)
and message templates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from journeys_util import Journeys
from kanal_testing import App
from predict_util import DAY, simulate_orders, write_profiles
from test_dashboard import page_data, sign_in

from kanal_collector.messages.eligibility import load_person
from kanal_collector.messages.renderer import compile_template, render_value, template_context
from kanal_collector.predict.fit import run_fit
from kanal_collector.predict.settings import PredictSettings
from kanal_collector.runtime import Runtime
from kanal_collector.store import predict as store
from kanal_collector.store.db import Database


def _admin(env: App, path: str, status: int = 200) -> Any:
    r = env.client.get(path, headers={"Authorization": f"Bearer {env.keys['admin']}"})
    assert r.status_code == status, r.get_data(as_text=True)
    return r.get_json()


def _shop(env: App, customers: int = 800) -> dict[str, int]:
    now = int(env.clock.now() * 1000)
    runtime: Runtime = env.app.extensions["kanal"]
    ids = write_profiles(runtime.db, simulate_orders(customers, start_ms=now - 540 * DAY,
                                                     end_ms=now, seed=9))
    db = Database(env.db)
    try:
        run_fit(db, PredictSettings(currency="EUR"), env.clock)
    finally:
        db.close()
    return ids


def test_the_admin_api(kanal_app: App) -> None:
    before = _admin(kanal_app, "/api/predict")
    assert before["fit"] is None
    assert before["notEnoughData"] == [
        "no fit yet; 0 orders so far (the models need at least 200 customers)"]
    ids = _shop(kanal_app)
    data = _admin(kanal_app, "/api/predict")
    assert data["fit"]["status"] == "done" and data["fit"]["currency"] == "EUR"
    assert data["fit"]["modelVersion"] == "1" and data["fit"]["bgnbd"]["r"] > 0
    assert sum(data["counts"]["stages"].values()) == 800
    assert sum(data["distributions"]["probabilityActive"]["counts"]) == 800
    assert data["calibration"]["rows"]
    assert [h["fitId"] for h in data["history"]] == [data["fit"]["id"]]
    pid = ids["c5"]
    person = _admin(kanal_app, f"/api/predict/profiles/{pid}")
    assert person["scores"]["values"]["stage"] in data["counts"]["stages"]
    assert person["scores"]["inputs"]["purchases"] >= 1
    profile = _admin(kanal_app, f"/api/profiles/{pid}")
    assert profile["scores"] == person["scores"]
    assert profile["computed"]["stage"] == person["scores"]["values"]["stage"]
    assert _admin(kanal_app, "/api/predict/profiles/999999", 404)["code"] == "not_found"
    fits = _admin(kanal_app, "/api/predict/fits")["fits"]
    assert [f["id"] for f in fits] == [data["fit"]["id"]]
    r = kanal_app.client.get("/api/predict")
    assert r.status_code == 401


def test_the_dashboard_page(kanal_app: App) -> None:
    sign_in(kanal_app)
    r = kanal_app.client.get("/dashboard/predict")
    assert r.status_code == 200
    assert "No fit yet" in r.get_data(as_text=True)
    _shop(kanal_app)
    r = kanal_app.client.get("/dashboard/predict")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "<script>" not in html and " style=" not in html  # CSP: nothing inline
    data = page_data(html)
    assert data == _admin(kanal_app, "/api/predict")
    for label in ("People per lifecycle stage", "People per churn risk",
                  "Customers by probability active", "Lifecycle stages per fit",
                  "Mean orders per customer in the holdout"):
        assert f'aria-label="{label}' in html
    chart = re.findall(r'aria-label="People per lifecycle stage".*?</svg>', html, re.S)[0]
    drawn = sum(float(v) for v in re.findall(r'data-value="([^"]+)"', chart))
    assert drawn == sum(data["counts"]["stages"].values())
    assert 'aria-current="page">Predictions' in html


@pytest.fixture
def journeys(tmp_path: Path) -> Any:
    env = Journeys(tmp_path)
    yield env
    env.close()


def test_journeys_start_on_score_changes_and_branch_on_scores(journeys: Journeys) -> None:
    env = journeys
    env.write("win_back", """\
        trigger: {event: Churn Risk Changed, where: {to: high}}
        entry: {rule: every_time}
        steps:
          - if: {computed: churn_risk, eq: high}
            then: [{send: win_back, channel: email}]
            else: [{exit: not at risk any more}]
        """)
    env.sync()
    start = env.now_ms()
    for user, ts, value in simulate_orders(400, start_ms=start - 400 * DAY, end_ms=start,
                                           seed=21):
        env.log.add(event="Order Completed", user_id=user, trusted=True, ts=ts,
                    received=start, properties={"order_id": f"{user}-{ts}", "revenue": value})
    env.log.process()
    settings = PredictSettings(min_customers=100, min_repeat_customers=20)
    run_fit(env.log.db, settings, env.clock)
    assert env.outbox() == []  # the first fit is the baseline
    env.clock.advance(150 * 86_400)
    run_fit(env.log.db, settings, env.clock)
    env.log.process()  # the processor reads the fit's events like any others
    risky = {p for p, (_, risk) in store.bands(
        env.conn, [r[0] for r in env.conn.execute("SELECT id FROM profiles")]).items()
        if risk == "high"}
    changed = {r[0] for r in env.conn.execute(
        "SELECT pe.profile_id FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE e.event = 'Churn Risk Changed' AND e.body LIKE '%\"to\":\"high\"%'")}
    assert changed and changed <= risky
    sent = {row["profile_id"] for row in env.outbox()}
    assert sent == changed  # one run each, and each passed the condition


def test_templates_see_the_scores(kanal_app: App) -> None:
    ids = _shop(kanal_app, 400)
    runtime: Runtime = kanal_app.app.extensions["kanal"]
    person = load_person(runtime.db.conn(), ids["c7"])
    assert person is not None
    template = compile_template(
        "{{ profile.stage }} {{ profile.churnRisk }} {{ '%.2f'|format(profile.predictedValue) }}",
        html=False, where="test")
    context = template_context(traits=person.traits, defaults={},
                               profile=person.template_profile(), data={}, message={},
                               channel="email", language="en")
    text = render_value(template, context, where="test")
    scores = store.score_details(runtime.db.conn(), ids["c7"])
    assert scores is not None
    assert text == (f"{scores['stage']} {scores['churnRisk']} "
                    f"{scores['predictedValue']:.2f}")


def test_journey_files_name_stages_correctly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kanal_collector.cli import cli

    path = tmp_path / "risky.yaml"
    path.write_text("trigger: {event: Lifecycle Stage Changed}\n"
                    "steps:\n"
                    "  - if: {computed: stage, in: [at_risk, slipping]}\n"
                    "    then: [{exit: gone}]\n"
                    "  - wait_until: {computed: next_order_at, offset: -2d}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["journeys", "validate", str(path),
                                      "--db", str(tmp_path / "k.db")])
    assert result.exit_code == 1
    assert (f"{path}:3: steps[0].if.in: stage is one of new, active, loyal, champions, "
            "at_risk, about_to_lose, lost, not 'slipping'") in result.output
