"""History is not now: imports, backfills and late events never start journeys as if
they had just happened (issue 13). Time moves on a fake clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from journeys_util import Journeys

from kanal_collector.cli import cli
from kanal_collector.clock import utc_iso
from kanal_collector.journeys.explain import explain, render
from kanal_collector.messages.eligibility import Policy
from kanal_collector.notices import history_notices, startup_notices
from kanal_collector.store import journeys as store

HOUR = 3600
DAY = 86_400

CART = """\
name: cart
trigger: {event: Product Added}
entry: {rule: every_time}
steps:
  - wait: 1h
  - send: cart_reminder
    channel: email
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journeys]:
    monkeypatch.chdir(tmp_path)  # no kanal.toml of the developer's
    j = Journeys(tmp_path)
    # `kanal import` stamps rows with the real time: the fake clock starts there.
    j.clock.set(time.time())
    try:
        yield j
    finally:
        j.close()


def _import(env: Journeys, tmp_path: Path, *extra: str, days_ago: float = 35) -> None:
    when = utc_iso(time.time() - days_ago * DAY)
    path = tmp_path / "carts.csv"
    path.write_text(f"userId,event,timestamp,properties.cart_id\nann,Product Added,{when},c1\n",
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(env.log.db.target),
                                      *extra])
    assert result.exit_code == 0, result.output
    assert "1 stored" in result.output
    env.log.process()


def test_an_imported_five_week_old_row_makes_no_outbox_row(env: Journeys,
                                                          tmp_path: Path) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    _import(env, tmp_path)
    env.advance(HOUR + 60)
    assert env.runs() == []
    assert env.outbox() == []
    report = explain(env.conn, "ann", "cart", now_ms=env.now_ms())
    [refused] = report["notEntered"]
    assert refused["code"] == "imported"
    assert "--trigger" in render(report)


def test_with_trigger_the_imported_row_makes_one(env: Journeys, tmp_path: Path) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    _import(env, tmp_path, "--trigger")
    assert env.outbox() == []  # the run waits its hour, counted from the import
    env.advance(HOUR + 60)
    [row] = env.outbox()
    assert (row["message"], row["channel"], row["state"]) == ("cart_reminder", "email",
                                                              "queued")
    assert row["data"]["event"] == {"cart_id": "c1"}


def test_a_row_cant_mark_itself_as_a_trigger(env: Journeys, tmp_path: Path) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    path = tmp_path / "carts.jsonl"
    path.write_text('{"userId": "ann", "event": "Product Added", '
                    '"context": {"kanal": {"trigger": true}}}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(env.log.db.target)])
    assert result.exit_code == 0, result.output
    env.log.process()
    env.advance(HOUR + 60)
    assert env.runs() == []


def _late(env: Journeys, days: float, **properties: object) -> None:
    now = env.now_ms()
    env.log.add("track", event="Product Added", user_id="ann", trusted=True,
                properties=properties or {"cart_id": "c1"}, ts=now - int(days * DAY * 1000),
                received=now)
    env.log.process()


def test_a_late_event_stamped_forty_days_ago_starts_nothing(env: Journeys) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    env.advance(2 * DAY)
    _late(env, 40)
    env.advance(HOUR + 60)
    assert env.runs() == [] and env.outbox() == []
    report = explain(env.conn, "ann", "cart", now_ms=env.now_ms())
    [refused] = report["notEntered"]
    assert refused["code"] == "too_old"
    assert refused["maxAgeMs"] == DAY * 1000
    assert "max_age is 1d" in refused["text"]


def test_an_event_within_max_age_and_one_from_the_future_start_runs(env: Journeys) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    env.advance(2 * DAY)
    _late(env, 0.9)       # late, but within a day
    env.advance(HOUR + 60)
    _late(env, -3)        # a clock three days ahead: counts as received now
    assert len(env.runs()) == 2


def test_max_age_is_per_trigger(env: Journeys) -> None:
    env.write("cart", CART.replace("trigger: {event: Product Added}",
                                   "trigger: {event: Product Added, max_age: 2h}"))
    env.sync()
    env.person("ann")
    env.advance(DAY)
    _late(env, 3 / 24)  # 3 hours
    assert env.runs() == []
    _late(env, 1 / 24)  # 1 hour
    assert len(env.runs()) == 1


def test_events_from_before_the_journey_was_first_enabled(env: Journeys) -> None:
    """The processor catches up on events received before the journey existed."""
    env.person("ann")
    now = env.now_ms()
    for days, cart in ((3, "old"), (0.5, "recent")):
        at = now - int(days * DAY * 1000)  # received (and stamped) then, not processed yet
        env.log.add("track", event="Product Added", user_id="ann", trusted=True,
                    properties={"cart_id": cart}, ts=at, received=at)
    env.write("cart", CART)
    env.sync()
    env.log.process()
    assert [r["state"] for r in env.runs()] == ["active"]  # "recent" only
    report = explain(env.conn, "ann", "cart", now_ms=env.now_ms())
    assert [n["code"] for n in report["notEntered"]] == ["before_journey"]


def test_first_enabled_is_per_journey_not_per_version(env: Journeys) -> None:
    env.write("cart", CART.replace("entry:", "enabled: false\nentry:"))
    env.sync()
    assert store.first_enabled(env.conn) == {"cart": None}
    env.advance(HOUR)
    env.write("cart", CART)
    env.sync()
    first = env.now_ms()
    assert store.first_enabled(env.conn) == {"cart": first}
    env.advance(DAY)
    env.write("cart", CART.replace("wait: 1h", "wait: 2h"))  # a new version
    env.sync()
    env.write("cart", CART.replace("entry:", "enabled: false\nentry:"))
    env.sync()
    env.write("cart", CART)
    env.sync()
    assert store.first_enabled(env.conn) == {"cart": first}


def test_serve_names_journeys_that_refused_history(env: Journeys, tmp_path: Path) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann")
    assert history_notices(env.conn, env.now_ms()) == []
    _late(env, 40)
    _late(env, 30, cart_id="c2")
    _import(env, tmp_path)
    [line] = startup_notices(env.conn, now_ms=env.now_ms(), policy=Policy(opt_in=()))
    assert line.startswith("journey cart: trigger events refused as history in the last day")
    assert "2 too old for the trigger's max_age" in line
    assert "1 imported without --trigger" in line
    env.advance(DAY + HOUR)
    assert history_notices(env.conn, env.now_ms()) == []
