"""Regressions found by using the new features on a real `kanal serve` (QA pass)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from journeys_util import Journeys
from kanal_testing import App, db_at, make_app

from kanal_collector.app import close_app, create_app
from kanal_collector.cli import cli
from kanal_collector.clock import FakeClock
from kanal_collector.config import Config
from kanal_collector.errors import ConfigError
from kanal_collector.journeys.explain import explain
from kanal_collector.reports import views
from kanal_collector.store.keys import create_key

CART = """\
name: cart
trigger: {event: Product Added}
entry: {rule: every_time, dedupe: cart_id}
goal: {event: Order Completed}
steps:
  - wait_for: {event: Order Completed, timeout: 1h}
"""

SPLIT = """\
name: welcome
trigger: {event: Signed Up}
steps:
  - split:
      arms:
        - {name: a, steps: [{wait: 1d}]}
        - {name: b, steps: [{wait: 2d}]}
"""


@pytest.fixture
def journeys(tmp_path: Path) -> Iterator[Journeys]:
    env = Journeys(tmp_path)
    try:
        yield env
    finally:
        env.close()


def test_why_orders_events_of_one_millisecond_by_their_id(journeys: Journeys) -> None:
    """A batch's events share their received time: an event that came before the one
    starting a run was not blocked by that run (it was deduplicated by an older run)."""
    journeys.write("cart", CART)
    journeys.sync()
    journeys.person("bob")
    journeys.track("bob", "Product Added", cart_id="c1")
    journeys.track("bob", "Order Completed", order_id="o1")  # run 1 converts and ends
    journeys.advance(60)
    now = journeys.now_ms()
    for cart in ("c1", "c2"):  # one batch: the same millisecond
        journeys.log.add("track", event="Product Added", user_id="bob", trusted=True,
                         properties={"cart_id": cart}, ts=now, received=now)
    journeys.log.process()
    report = explain(journeys.conn, "bob", "cart", now_ms=journeys.now_ms())
    first, second = sorted(report["runs"], key=lambda r: r["id"])
    assert second["trigger"]["properties"] == {"cart_id": "c2"}
    [blocked] = report["notEntered"]
    assert blocked["code"] == "deduplicated"
    assert blocked["runId"] == first["id"]


def test_why_still_says_already_active_within_one_millisecond(journeys: Journeys) -> None:
    # Without a dedupe key a person is in one run at a time (with one, runs are per
    # cart: test_journeys_evaluator).
    journeys.write("cart", CART.replace(", dedupe: cart_id", ""))
    journeys.sync()
    journeys.person("cy")
    now = journeys.now_ms()
    for cart in ("c1", "c2"):  # c1 starts the run, c2 comes while it is going
        journeys.log.add("track", event="Product Added", user_id="cy", trusted=True,
                         properties={"cart_id": cart}, ts=now, received=now)
    journeys.log.process()
    report = explain(journeys.conn, "cy", "cart", now_ms=journeys.now_ms())
    [run] = report["runs"]
    [blocked] = report["notEntered"]
    assert blocked["code"] == "already_active"
    assert blocked["runId"] == run["id"]


def _admin(env: App) -> dict[str, str]:
    """A new admin key's Authorization header."""
    key = create_key(env.app.extensions["kanal"].db.conn(), "admin",
                     int(env.clock.now() * 1000))
    return {"Authorization": f"Bearer {key}"}


def test_experiments_of_an_unknown_journey_are_a_404(journeys: Journeys,
                                                      tmp_path: Path) -> None:
    """Like /api/reports/journeys/NAME: an unknown journey is a 404 (and an error in the
    CLI), not an empty list that looks like "no split tests yet"."""
    journeys.write("welcome", SPLIT)
    journeys.sync()
    env = make_app(tmp_path / "kanal.db")
    try:
        r = env.client.get("/api/reports/experiments?journey=nope", headers=_admin(env))
        assert r.status_code == 404
        assert r.get_json() == {"code": "not_found", "message": "no journey 'nope'"}
        r = env.client.get("/api/reports/experiments?journey=welcome", headers=_admin(env))
        assert r.status_code == 200
        assert r.get_json()["journey"] == "welcome"
    finally:
        close_app(env.app)
    (tmp_path / "kanal.toml").write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", "experiments", "--journey", "nope",
                                      "--db", db_at(tmp_path / "kanal.db"),
                                      "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no journey 'nope'"
    result = CliRunner().invoke(cli, ["report", "experiments", "--journey", "welcome",
                                      "--db", db_at(tmp_path / "kanal.db"),
                                      "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("sections", "words"), [
    ({"attribution": {"lookback": "30x"}}, "attribution.lookback: '30x' is not a duration"),
    ({"attribution": {"half_life": "0d"}}, "attribution.half_life"),
    ({"costs": {"channel": {"sms": -4}}}, "costs.channel.sms: amount must be a finite"),
    ({"costs": {"currency": "euro"}}, "costs.currency"),
    ({"costs": {"widget": {"x": 1}}}, "costs.widget is not a dimension"),
])
def test_the_collector_refuses_bad_report_settings_at_start(
        tmp_path: Path, sections: dict[str, Any], words: str) -> None:
    """Bad [attribution]/[costs] stop `kanal serve` (like [frequency]) instead of
    answering 500 on the first report."""
    config = Config(db=db_at(tmp_path / "kanal.db"), sections=sections)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(".", r"\.")):
        create_app(config, clock=FakeClock(1_790_000_000.0))


@pytest.mark.parametrize("since", ["999999w", "0001-01-01", "1969-12-31"])
def test_simulate_refuses_a_since_before_1970(tmp_path: Path, since: str) -> None:
    """Such a --since was a traceback (year out of range) after the replay."""
    (tmp_path / "kanal.toml").write_text("", encoding="utf-8")
    (tmp_path / "cart.yaml").write_text(CART, encoding="utf-8")
    result = CliRunner().invoke(cli, ["journeys", "simulate", str(tmp_path / "cart.yaml"),
                                      "--since", since, "--db", db_at(tmp_path / "kanal.db"),
                                      "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 2, result.output
    assert f"'{since}' is before 1970" in result.output
    assert "Traceback" not in result.output


def test_why_does_not_create_a_database(tmp_path: Path) -> None:
    (tmp_path / "kanal.toml").write_text("", encoding="utf-8")
    db = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["journeys", "why", "ann", "cart", "--db", str(db),
                                      "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: no database at {db}"
    assert not db.exists()


def test_an_overview_of_millions_of_days_is_refused(kanal_app: App, tmp_path: Path) -> None:
    """`until=9999-12-31` listed ~2.9 million days (300 MB, 40 s of the server); a long
    but sane window (since 1970) still works."""
    headers = _admin(kanal_app)
    r = kanal_app.client.get("/api/reports/overview?until=9999-12-31", headers=headers)
    assert r.status_code == 400
    body = r.get_json()
    assert body["code"] == "invalid_parameter"
    assert body["message"].startswith("until: the overview lists every day: at most 36600")
    r = kanal_app.client.get("/api/reports/overview?since=1970-01-01", headers=headers)
    assert r.status_code == 200
    assert len(r.get_json()["days"]) > 20_000
    token = kanal_app.client.get("/dashboard/login").get_data(as_text=True)
    match = re.search(r'name="login_csrf" value="([^"]+)"', token)
    assert match is not None
    key = headers["Authorization"].removeprefix("Bearer ")
    r = kanal_app.client.post("/dashboard/login", data={"key": key,
                                                         "login_csrf": match.group(1)})
    assert r.status_code == 303
    r = kanal_app.client.get("/dashboard/?until=9999-12-31")
    assert r.status_code == 400
    assert "at most 36600 days" in r.get_data(as_text=True)
    result = CliRunner().invoke(cli, ["report", "overview", "--until", "9999-12-31",
                                      "--db", db_at(tmp_path / "kanal.db")])
    assert result.exit_code == 2
    assert "Invalid value for '--until': the overview lists every day" in result.output


def test_models_with_only_commas_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"^models: name at least one model: first_touch"):
        views.parse_models(",")
    with pytest.raises(ValueError, match=r"^models: unknown model 'best'; choose from"):
        views.parse_models("linear,best")
    assert views.parse_models(" linear , linear ") == ("linear",)


def test_an_unquoted_toml_time_gets_a_hint(tmp_path: Path) -> None:
    """`from = 21:00:00` in kanal.toml is a TOML time, not a string: say to quote it."""
    path = tmp_path / "kanal.toml"
    path.write_text(f'db = "{db_at(tmp_path / "kanal.db")}"\n'
                    '[quiet_hours]\nfrom = 21:00:00\nto = "08:00"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {path}: quiet_hours.from: a time of day in "
                                     "quotes, like \"21:00\" (unquoted it is a TOML time)")
