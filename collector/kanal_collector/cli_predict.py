"""`kanal predict fit|show|calibrate`: predictive scores from the shop's own orders."""

from __future__ import annotations

import csv
import io
import json
import sys

import click

from .cli_common import _config, _database, _now_ms, common_options, with_db
from .clock import SystemClock
from .errors import KanalError
from .predict.settings import DAY_MS, PredictSettings
from .predict.views import score_lines, scores_json
from .profiles.views import lookup
from .reports.window import WindowError, parse_duration
from .store import identities as identity_store
from .store.db import Database


@click.group()
def predict() -> None:
    """Predictive scores: lifecycle stage, churn risk, expected orders and value."""


def _settings(config_path: str | None, db: str | None) -> tuple[Database, PredictSettings]:
    config = _config(config_path, db=db)
    try:
        settings = PredictSettings.from_config(config)
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    return _database(config), settings


@predict.command("fit")
@common_options
def predict_fit(db: str | None, config_path: str | None) -> None:
    """Fit the models on every customer's orders and score everyone (in this process:
    `kanal serve` does the same on schedule, in a process of its own)."""
    from .predict.fit import run_fit

    database, settings = _settings(config_path, db)
    try:
        outcome = run_fit(database, settings, SystemClock(),
                          progress=lambda text: click.echo(text, err=True))
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()
    counts = outcome.record.get("counts", {})
    click.echo(f"Fit {outcome.fit_id}: {outcome.status}"
               + (f" ({outcome.message})" if outcome.message else ""))
    for label, key in (("stages", "stages"), ("churn risk", "risks")):
        values = counts.get(key) or {}
        if values:
            click.echo(f"  {label}: " + ", ".join(f"{k} {n}" for k, n in sorted(values.items())))


@predict.command("show")
@common_options
@click.argument("user")
@click.option("--kind", type=click.Choice(identity_store.KINDS),
              help="Only look USER up as this kind of identity.")
@click.option("--json", "as_json", is_flag=True, help="The admin API's JSON.")
@with_db
def predict_show(db: Database, user: str, kind: str | None, as_json: bool) -> None:
    """Show USER's scores, the inputs they came from and the fit that made them."""
    conn = db.conn()
    pid = lookup(conn, user, kind)
    if pid is None:
        raise click.ClickException(f"no profile has the identity {user!r}")
    scores = scores_json(conn, pid)
    if as_json:
        click.echo(json.dumps({"profileId": pid, "scores": scores}, indent=2))
        return
    if scores is None:
        click.echo(f"Profile {pid} has no scores: no order, or no fit since "
                   "(`kanal predict fit`).")
        return
    click.echo(f"Profile {pid}, " + "\n".join(score_lines(scores)))


@predict.command("calibrate")
@common_options
@click.option("--holdout", help="The days predicted from the rest (default: "
              "[predict] holdout, 90d).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
def predict_calibrate(db: str | None, config_path: str | None, holdout: str | None,
                      fmt: str) -> None:
    """Fit on all but the last days of history and compare the predicted orders in
    those days with the actual ones, by repeat purchases before them."""
    from .predict.calibration import calibrate
    from .predict.fit import read_customers
    from .predict.scores import Thresholds

    database, settings = _settings(config_path, db)
    days = settings.holdout_days
    if holdout:
        try:
            ms = parse_duration(holdout, param="--holdout")
        except WindowError as exc:
            raise click.ClickException(str(exc)) from None
        if ms % DAY_MS:
            raise click.ClickException(f"--holdout: a whole number of days, not {holdout!r}")
        days = ms // DAY_MS
    try:
        customers = read_customers(database.conn())
    finally:
        database.close()
    result = calibrate(customers, _now_ms() // DAY_MS, days,
                       Thresholds(settings.min_customers, settings.min_history_days,
                                  settings.min_repeat_customers))
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    if result.missing:
        raise click.ClickException("not enough data yet in the training period: "
                                   + "; ".join(result.missing))
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["repeat_purchases", "customers", "actual", "predicted"])
        for row in result.rows:
            writer.writerow([row["repeat"], row["customers"],
                             "" if row["actual"] is None else f"{row['actual']:.4f}",
                             "" if row["predicted"] is None else f"{row['predicted']:.4f}"])
        sys.stdout.write(out.getvalue())
        return
    click.echo(f"Trained on the days up to the last {days} days; orders (purchase days) "
               f"in those {days} days, mean per customer:")
    click.echo(f"{'repeat purchases':>16}  {'customers':>9}  {'actual':>8}  {'predicted':>9}")
    for row in result.rows:
        actual = "-" if row["actual"] is None else f"{row['actual']:.3f}"
        pred = "-" if row["predicted"] is None else f"{row['predicted']:.3f}"
        click.echo(f"{row['repeat']:>16}  {row['customers']:>9}  {actual:>8}  {pred:>9}")
    click.echo(f"{'all':>16}  {sum(r['customers'] for r in result.rows):>9}  "
               f"{result.total_actual:>8.0f}  {result.total_predicted:>9.1f}  (totals)")
