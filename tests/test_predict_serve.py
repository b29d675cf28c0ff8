"""Scores in use: the refit schedule (a process of its own), `kanal predict …`,
`kanal profiles show|rebuild`, the admin API, journeys and templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import db_at
from predict_util import DAY, simulate_orders, write_profiles
from profiles_util import T0

from kanal_collector.cli import cli
from kanal_collector.clock import FakeClock
from kanal_collector.config import Config, load_config
from kanal_collector.errors import ConfigError
from kanal_collector.predict.fit import LEASE, run_fit
from kanal_collector.predict.schedule import PredictScheduler
from kanal_collector.predict.settings import PredictSettings
from kanal_collector.store import activity as activity_store
from kanal_collector.store import keys as keystore
from kanal_collector.store import leases
from kanal_collector.store import predict as store
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.schema import migrate

END = T0 + 540 * DAY


@pytest.fixture
def shop_db(tmp_path: Path) -> Iterator[str]:
    """A database of the engine under test with 1,000 simulated customers' profiles."""
    path = db_at(tmp_path / "kanal.db")
    db = Database(path, synchronous="OFF")
    migrate(db.conn())
    keystore.create_source(db.conn(), "default", T0)
    orders = simulate_orders(1000, start_ms=T0, end_ms=END, seed=3)
    write_profiles(db, orders)
    # the overview's order counters, as the processor would have kept them
    with transaction(db.conn()):
        activity_store.add_track_counts(db.conn(), {
            (END // DAY, "Order Completed"): (len(orders), sum(v for _, _, v in orders))})
    db.close()
    yield path


FIT_MODULES = ("scipy.optimize", "scipy.special", "kanal_collector.predict.bgnbd",
               "kanal_collector.predict.gammagamma", "kanal_collector.predict.fit")
"""What a fit loads and the serving process must not (the recommendations' scipy.sparse
is the server's own)."""


def test_the_serving_process_never_imports_the_models(tmp_path: Path) -> None:
    code = ("import sys; from kanal_collector.app import create_app;"
            "from kanal_collector.config import Config; import kanal_collector.server;"
            f"create_app(Config(db={db_at(tmp_path / 'k.db')!r}));"
            f"print(sorted(m for m in sys.modules if m.startswith({FIT_MODULES!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def _wait(scheduler: PredictScheduler) -> None:
    assert scheduler.process is not None
    scheduler.process.wait(timeout=300)  # the fit's own process; no timing is asserted
    scheduler.run_once()
    assert scheduler.process is None


def test_the_scheduler_refits_in_a_process_of_its_own(shop_db: str) -> None:
    clock = FakeClock(END / 1000)
    db = Database(shop_db)
    config = Config(db=shop_db, sections={"predict": {"refit_every": "1d"}})
    scheduler = PredictScheduler(db, config, clock)
    try:
        scheduler.run_once()
        assert scheduler.process is not None and scheduler.process.pid != os.getpid()
        _wait(scheduler)
        fit = store.latest_fit(db.conn())
        assert fit is not None and fit["status"] == "done"
        assert fit["asOf"] // 1000 == END // 1000  # the scheduler's "now", not the machine's
        assert store.score_counts(db.conn())["stages"]
        clock.advance(3600)
        scheduler.run_once()
        assert scheduler.process is None  # not due yet
        clock.advance(86_400)
        scheduler.run_once()
        assert scheduler.process is not None
        _wait(scheduler)
        assert len(store.fits(db.conn())) == 2
    finally:
        scheduler.close()
        db.close()


def test_a_shop_with_fewer_orders_than_needed_customers_is_not_fitted(
        shop_db: str) -> None:
    db = Database(shop_db)
    config = Config(db=shop_db, sections={"predict": {"min_customers": 10**6}})
    scheduler = PredictScheduler(db, config, FakeClock(END / 1000))
    scheduler.run_once()
    assert scheduler.process is None
    db.close()


def test_a_database_error_is_looked_at_again_later(shop_db: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler handles a broken connection itself (the supervisor's retry would
    close the worker, and closing it stops a running fit): it opens a new one later."""
    from kanal_collector.predict import schedule
    from kanal_collector.store.connection import EngineError

    def broken(conn: Any) -> int:
        raise EngineError("server closed the connection unexpectedly")

    db = Database(shop_db)
    clock = FakeClock(END / 1000)
    scheduler = PredictScheduler(db, Config(db=shop_db), clock)
    try:
        monkeypatch.setattr(store, "last_started", broken)
        assert scheduler.run_once() == 0 and scheduler.process is None
        assert scheduler._conn is None  # dropped, to be opened anew
        monkeypatch.undo()
        clock.advance(schedule.CHECK_EVERY / 2)
        scheduler.run_once()
        assert scheduler.process is None  # not looked at again yet
        assert scheduler.due()  # a new connection
    finally:
        scheduler.close()
        db.close()


def test_a_disabled_schedule_starts_nothing(shop_db: str) -> None:
    db = Database(shop_db)
    config = Config(db=shop_db, sections={"predict": {"enabled": False}})
    scheduler = PredictScheduler(db, config, FakeClock(END / 1000))
    scheduler.run_once()
    assert scheduler.process is None
    db.close()


@pytest.mark.parametrize(("table", "message"), [
    ({"refit": "1d"}, "predict.refit is not a setting"),
    ({"refit_every": "soon"}, "predict.refit_every: 'soon' is not a duration"),
    ({"holdout": "12h"}, "predict.holdout must be a whole number of days"),
    ({"min_customers": 0}, "predict.min_customers must be a whole number ≥ 1"),
    ({"enabled": "yes"}, "predict.enabled must be true or false"),
])
def test_bad_settings_are_named(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PredictSettings.from_config(Config(sections={"predict": table}))


@pytest.mark.parametrize(("text", "message"), [
    ("[predict]\nrefit = \"1d\"\n",
     "unknown key predict.refit in [predict]; did you mean predict.refit_every?"),
    ("[predict]\nmin_customers = 0\n",
     "predict.min_customers: a whole number of at least 1, not 0"),
    ("[predict]\nenabled = \"yes\"\n", "predict.enabled: true or false, not 'yes'"),
    ("[predict]\nholdout = 90\n", "predict.holdout: a string, not 90"),
])
def test_kanal_toml_is_checked_against_the_registry(tmp_path: Path, text: str,
                                                    message: str) -> None:
    path = tmp_path / "kanal.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: {message}"


def test_every_predict_setting_is_registered(tmp_path: Path) -> None:
    path = tmp_path / "kanal.toml"
    path.write_text('[predict]\nenabled = false\nrefit_every = "12h"\nmin_customers = 10\n'
                    'min_history_days = 30\nmin_repeat_customers = 5\nholdout = "60d"\n'
                    'currency = "sek"\n', encoding="utf-8")
    settings = PredictSettings.from_config(load_config(path, environ={}))
    assert settings == PredictSettings(enabled=False, refit_every_ms=12 * 3_600_000,
                                       min_customers=10, min_history_days=30,
                                       min_repeat_customers=5, holdout_days=60,
                                       currency="SEK")


@pytest.mark.parametrize(("sections", "currency"), [
    ({}, ""),
    ({"costs": {"currency": "nok"}}, "NOK"),
    ({"costs": {"currency": "NOK"}, "products": {"default_currency": "DKK"}}, "DKK"),
    ({"predict": {"currency": "EUR"}, "products": {"default_currency": "DKK"}}, "EUR"),
])
def test_one_currency_per_shop(sections: dict[str, Any], currency: str) -> None:
    assert PredictSettings.from_config(Config(sections=sections)).currency == currency


def test_a_bad_currency_is_named() -> None:
    with pytest.raises(ConfigError, match="^predict.currency: a three-letter currency code "
                                          "like EUR, not 'euros'$"):
        PredictSettings.from_config(Config(sections={"predict": {"currency": "euros"}}))


def run(db: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, [*args, "--db", db])
    assert result.exit_code == code, result.output
    return result.output


def test_the_predict_commands(shop_db: str) -> None:
    out = run(shop_db, "predict", "fit")
    assert "Fit 1: done" in out and "churn risk: " in out
    out = run(shop_db, "predict", "show", "c1")
    for label in ("stage", "churn risk", "probability active", "expected orders",
                  "predicted value", "historic value", "next order", "inputs:"):
        assert f"  {label}" in out
    data = json.loads(run(shop_db, "predict", "show", "c1", "--json"))
    assert data["scores"]["fit"]["id"] == 1 and data["scores"]["inputs"]["purchases"] >= 1
    assert "no profile has the identity 'nobody'" in run(
        shop_db, "predict", "show", "nobody", code=1)
    assert "Scores, fit 1" in run(shop_db, "profiles", "show", "c1")
    assert json.loads(run(shop_db, "profiles", "show", "c1", "--json"))["scores"] is not None
    # the calibration table, on the machine's clock: the orders are long past, so a
    # holdout reaching back into them is needed
    days = (int(time.time() * 1000) - END) // DAY + 120
    out = run(shop_db, "predict", "calibrate", "--holdout", f"{days}d")
    assert "repeat purchases" in out and "7+" in out
    rows = run(shop_db, "predict", "calibrate", "--holdout", f"{days}d", "--format", "csv")
    assert rows.splitlines()[0] == "repeat_purchases,customers,actual,predicted"
    assert "--holdout: '10x' is not a duration" in run(
        shop_db, "predict", "calibrate", "--holdout", "10x", code=1)


def test_a_second_fit_meanwhile_is_refused_with_one_line(shop_db: str) -> None:
    db = Database(shop_db)
    assert leases.acquire(db.conn(), LEASE, "fit:elsewhere:1", time.time(), 60)
    out = run(shop_db, "predict", "fit", code=1)
    assert out.strip().splitlines()[-1].startswith("Error: another fit is running")
    assert "Traceback" not in out
    out = run(shop_db, "profiles", "rebuild", code=1)
    assert "another fit is running" in out
    db.close()


def test_profiles_rebuild_recomputes_the_scores(shop_db: str) -> None:
    db = Database(shop_db)
    run_fit(db, PredictSettings(), FakeClock(END / 1000))
    db.close()
    out = run(shop_db, "profiles", "rebuild")
    # write_profiles put the orders straight into the profiles (no events in the log),
    # so the rebuilt profiles have none: the scores go with them
    assert "0 people's predictive scores recomputed" in out


@pytest.mark.slow
def test_kanal_serve_refits_off_the_request_path(tmp_path: Path) -> None:
    """A real `kanal serve`: the fit runs in a process of its own (the models' libraries
    never enter the server's memory), ingest answers meanwhile, and the scores reach the
    admin API."""
    import requests
    from kanal_testing import start_collector

    path = tmp_path / "kanal.db"
    db = Database(db_at(path), synchronous="OFF")
    migrate(db.conn())
    now = int(time.time() * 1000)
    orders = simulate_orders(600, start_ms=now - 500 * DAY, end_ms=now, seed=4)
    ids = write_profiles(db, orders)
    with transaction(db.conn()):
        activity_store.add_track_counts(db.conn(), {
            (now // DAY, "Order Completed"): (len(orders), sum(v for _, _, v in orders))})
    db.close()
    (tmp_path / "kanal.toml").write_text('[predict]\ncurrency = "EUR"\n', encoding="utf-8")
    collector = start_collector(path, env={"KANAL_CONFIG": str(tmp_path / "kanal.toml")})
    try:
        headers = {"Authorization": f"Bearer {collector.admin_key}"}
        deadline = time.monotonic() + 240
        answers = []
        data: dict[str, Any] = {}
        while time.monotonic() < deadline:
            r = requests.post(f"{collector.url}/v1/track", auth=(collector.secret_key, ""),
                              json={"userId": "c1", "event": "Product Viewed"}, timeout=30)
            answers.append(r.status_code)
            data = requests.get(f"{collector.url}/api/predict", headers=headers,
                                timeout=30).json()
            if data["fit"] is not None:
                break
            time.sleep(0.2)
        assert data["fit"] is not None and data["fit"]["status"] == "done", data
        assert set(answers) == {200}
        maps = Path(f"/proc/{collector.process.pid}/maps").read_text()
        for library in ("/scipy/optimize/", "/scipy/special/"):
            assert library not in maps  # the fit's libraries never loaded here
        person = requests.get(f"{collector.url}/api/predict/profiles/{ids['c1']}",
                              headers=headers, timeout=30).json()
        assert person["scores"]["fit"]["currency"] == "EUR"
    finally:
        collector.stop()


def test_show_says_not_enough_data_yet(shop_db: str, tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text("[predict]\nmin_repeat_customers = 100000\n",
                                         encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", "fit", "--db", shop_db, "--config",
                                      str(tmp_path / "small.toml")])
    assert result.exit_code == 0 and "not_enough_data" in result.output
    out = run(shop_db, "predict", "show", "c1")
    assert "churn risk          not enough data yet (" in out
    assert "repeat customers (need 100000)" in out
    assert "  stage               " in out and "not enough" not in out.split("\n")[1]
