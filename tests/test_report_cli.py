"""`kanal report …` on a database filled through the real processor (journeys included)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from journeys_util import Journeys
from kanal_testing import db_at

from kanal_collector.cli import cli
from kanal_collector.config import Config
from kanal_collector.reports import views
from kanal_collector.reports.window import parse_window

WINDOW = ["--since", "2024-01-01", "--until", "2024-02-01"]
SINCE_MS, UNTIL_MS = parse_window("2024-01-01", "2024-02-01", now_ms=0)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A journey with a holdout split, 40 sign-ups, UTM visits and orders."""
    env = Journeys(tmp_path_factory.mktemp("report"))
    env.write("welcome", """\
        trigger: {event: Signed Up}
        goal: {event: Order Completed, within: 7d}
        steps:
          - split:
              holdout: 50
              arms:
                - {name: mail, steps: [{send: welcome, channel: email}]}
        """)
    env.sync()
    for i in range(40):
        user = f"p{i}"
        env.person(user)
        campaign = {"source": "newsletter" if i % 2 else "google",
                    "medium": "email" if i % 2 else "cpc", "name": f"spring{i % 3}"}
        env.log.add("page", user_id=user, trusted=True, ts=env.now_ms(), received=env.now_ms(),
                    context={"campaign": campaign,
                             "page": {"url": "https://shop.example/?utm_source=x"}})
        env.track(user, "Signed Up")
        env.clock.advance(60)
        if i % 4 == 0:
            env.track(user, "Order Completed", order_id=f"o{i}", revenue=10.0 + i,
                      currency="EUR")
    env.advance(3600)
    try:
        yield env.log.db.target
    finally:
        env.close()


def run(db: Path, *args: str) -> Any:
    """Run `kanal report ARGS --db DB`."""
    return CliRunner().invoke(cli, ["report", *args, "--db", str(db)],
                              catch_exceptions=False)


def documents(db: Path) -> dict[str, Any]:
    """The documents the API would answer for WINDOW, computed directly."""
    from kanal_collector.store.db import Database

    database = Database(db)
    try:
        conn = database.conn()
        config = Config(db=db)
        window = {"since_ms": SINCE_MS, "until_ms": UNTIL_MS}
        return {
            "overview": views.overview_view(conn, config, **window),
            "attribution": views.attribution_view(conn, config, **window),
            "journeys": views.journeys_view(conn, **window),
            "journey": views.journey_view(conn, "welcome", **window),
            "experiments": views.experiments_view(conn, **window),
        }
    finally:
        database.close()


def test_json_is_the_api_document(filled: Path) -> None:
    expected = documents(filled)
    for name, args in [("overview", ["overview"]), ("attribution", ["attribution"]),
                       ("journeys", ["journeys"]), ("journey", ["journey", "welcome"]),
                       ("experiments", ["experiments"])]:
        result = run(filled, *args, *WINDOW, "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == expected[name], name
    assert expected["overview"]["totals"]["conversions"] == 10
    assert expected["journeys"]["journeys"][0]["entered"] == 40


def test_overview_table_and_csv(filled: Path) -> None:
    doc = documents(filled)["overview"]
    result = run(filled, "overview", *WINDOW)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"events {doc['totals']['events']}  ")
    assert f"revenue {doc['totals']['revenue']:.2f}" in lines[0]
    header, rule = lines[2], lines[3]
    assert header.split() == ["day", *sorted({o for d in doc["days"] for o in d["events"]}),
                              "kanal_events", "active_profiles", "conversions", "revenue"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert len({len(line) for line in lines[4:] if line.strip()}) <= 2  # aligned columns
    rows = list(csv.reader(io.StringIO(run(filled, "overview", *WINDOW, "--format",
                                           "csv").output)))
    assert rows[0] == header.split()
    assert len(rows) == 1 + len(doc["days"])
    assert sum(float(r[-1]) for r in rows[1:]) == pytest.approx(doc["totals"]["revenue"])


def test_attribution_blocks_per_model_and_dimension(filled: Path) -> None:
    doc = documents(filled)["attribution"]
    result = run(filled, "attribution", *WINDOW)
    assert result.exit_code == 0, result.output
    for model in doc["models"]:
        assert f"{model} by channel" in result.output
    one = run(filled, "attribution", *WINDOW, "--model", "linear", "--by", "campaign")
    assert "linear by campaign" in one.output and "first_touch" not in one.output
    rows = list(csv.DictReader(io.StringIO(run(
        filled, "attribution", *WINDOW, "--by", "campaign", "--format", "csv").output)))
    assert {r["model"] for r in rows} == set(doc["models"])
    first = [r for r in rows if r["model"] == "first_touch"]
    assert [(r["campaign"], float(r["revenue"])) for r in first] == \
        [(r["key"], r["revenue"]) for r in doc["models"]["first_touch"]["campaign"]]


def test_journeys_journey_and_experiments_tables(filled: Path) -> None:
    result = run(filled, "journeys", *WINDOW)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].split()[:3] == ["journey", "enabled", "entered"]
    assert result.output.splitlines()[2].split()[:3] == ["welcome", "yes", "40"]
    result = run(filled, "journey", "welcome", *WINDOW)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("welcome: entered 40")
    result = run(filled, "experiments", *WINDOW)
    assert result.exit_code == 0, result.output
    assert "welcome /" in result.output and "control: holdout" in result.output
    rows = list(csv.DictReader(io.StringIO(run(filled, "experiments", *WINDOW,
                                               "--format", "csv").output)))
    assert {r["arm"] for r in rows} == {"holdout", "mail"}
    assert sum(int(r["runs"]) for r in rows) == 40
    # CSV carries plain numbers a spreadsheet reads: proportions, not "35.29%"; empty, not "-"
    arms = {a["arm"]: a for e in documents(filled)["experiments"]["experiments"]
            for a in e["arms"]}
    for row in rows:
        assert float(row["rate"]) == pytest.approx(arms[row["arm"]]["rate"])
    control = next(r for r in rows if r["control"] == "yes")
    assert control["p_value"] == "" and control["significant"] == ""


def test_costs_set_list_delete(tmp_path: Path) -> None:
    db = tmp_path / "kanal.db"
    result = run(db, "costs", "set", "channel", "email", "120.5", "--currency", "EUR",
                 "--create-db")
    assert result.exit_code == 0, result.output
    assert "120.50 EUR" in result.output
    listed = json.loads(run(db, "costs", "--format", "json").output)
    assert [(c["key"], c["amount"], c["source"]) for c in listed["costs"]] == \
        [("email", 120.5, "api")]
    table = run(db, "costs").output.splitlines()
    assert table[0].split() == ["dimension", "key", "amount", "currency", "source"]
    assert table[2].split() == ["channel", "email", "120.50", "EUR", "api"]
    assert run(db, "costs", "delete", "channel", "email").exit_code == 0
    again = CliRunner().invoke(cli, ["report", "costs", "delete", "channel", "email",
                                     "--db", str(db)])
    assert again.exit_code == 1 and "no cost for channel 'email'" in again.output
    bad = CliRunner().invoke(cli, ["report", "costs", "set", "--db", str(db), "--",
                                   "channel", "email", "-3"])
    assert bad.exit_code == 1 and "AMOUNT must be a number" in bad.output, bad.output
    # without `--` too: -5 is an amount to refuse plainly, not an unknown option
    for amount in ("-5", "five", "nan", "inf"):
        bad = CliRunner().invoke(cli, ["report", "costs", "set", "channel", "sms", amount,
                                       "--db", str(db)])
        assert bad.exit_code == 1, bad.output
        assert bad.output == ("Error: AMOUNT must be a number of at least 0 (like 120 or "
                              f"120.50), not {amount!r}\n")


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["overview", "--since", "soon"], 2, "'--since': 'soon' is neither"),
    (["journeys", "--since", "2024-02-01", "--until", "2024-01-01"], 2, "must be before"),
    (["attribution", "--lookback", "ever"], 2, "'--lookback': 'ever' is not a duration"),
    (["attribution", "--model", "best"], 2, "'best' is not one of"),
    (["journey", "nope"], 1, "no journey 'nope'"),
])
def test_errors(tmp_path: Path, args: list[str], code: int, fragment: str) -> None:
    result = CliRunner().invoke(cli, ["report", *args, "--db", db_at(tmp_path / "kanal.db"),
                                      "--create-db"])
    assert result.exit_code == code, result.output
    assert fragment in result.output
