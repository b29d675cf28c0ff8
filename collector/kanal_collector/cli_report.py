"""`kanal report overview|attribution|journeys|journey|experiments|costs`.

Each report prints the document the admin API answers (reports/views.py): `--format
json` prints it as is, `table` (the default) as aligned columns, `csv` as a header row
and data rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from .cli_common import _config, _database, _now_ms, common_options
from .cli_lazy import LazyGroup
from .config import Config
from .errors import KanalError
from .money import amount as money_amount
from .reports import views
from .reports.attribution import DIMENSIONS, MODELS
from .reports.costs import delete_cost, set_cost
from .reports.window import WindowError, parse_duration, parse_window
from .store.db import Database

FORMATS = ("table", "csv", "json")
_FORMAT = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                       show_default=True,
                       help="table: aligned columns; csv: header and rows; json: the API's "
                            "JSON.")
_SINCE = click.option("--since", help="Start of the window: a duration back from now (30d, "
                                      "12h, 2w), an ISO date or an ISO time (default 30d).")
_UNTIL = click.option("--until", help="End of the window (default now); same forms as --since.")

Row = Sequence[Any]


@contextmanager
def _opened(db: str | None, config_path: str | None) -> Iterator[tuple[Config, Database]]:
    config = _config(config_path, db=db)
    database = _database(config)
    try:
        yield config, database
    except (KanalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()


def _window(since: str | None, until: str | None) -> tuple[int, int]:
    try:
        return parse_window(since, until, now_ms=_now_ms())
    except WindowError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"{exc.param}: "),
                                 param_hint=f"'--{exc.param}'") from None


def _duration(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value, param=option)
    except WindowError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"{exc.param}: "),
                                 param_hint=f"'--{option.replace('_', '-')}'") from None


# --- output ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A number as a table shows it (`text`) and as CSV writes it (`raw`, unformatted)."""

    raw: Any
    text: str

    def __str__(self) -> str:
        return self.text


def money(value: Any) -> Cell:
    """2 decimals, or "-" for None."""
    return Cell(value, "-" if value is None else f"{float(value):.2f}")


def credit(value: Any) -> Cell:
    """A (fractional) count: whole numbers plain, others to 4 decimals."""
    if value is None:
        return Cell(None, "-")
    number = float(value)
    return Cell(value, f"{number:.0f}" if number.is_integer() else f"{number:.4f}")


def rate(value: Any) -> Cell:
    """A proportion as a percentage with 2 decimals (CSV: the proportion itself)."""
    return Cell(value, "-" if value is None else f"{float(value) * 100:.2f}%")


def ratio(value: Any) -> Cell:
    """A plain ratio (ROAS, p-value) to 4 decimals."""
    return Cell(value, "-" if value is None else f"{float(value):.4f}")


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").rstrip("%")
    try:
        float(stripped)
    except ValueError:
        return text == "-"
    return True


def render_table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    """Aligned columns: text left, numbers right, a rule under the header."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    right = [bool(rows) and all(_numeric(r[i]) for r in cells[1:]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(row, widths, right, strict=True)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _csv(headers: Sequence[str], rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([_raw(c) for c in r] for r in rows)
    return buffer.getvalue().rstrip("\n")


def _raw(cell: Any) -> Any:
    """What CSV writes: plain numbers (no "%", no "-"), empty for a missing value."""
    value = cell.raw if isinstance(cell, Cell) else cell
    return "" if value is None else value


def _emit(fmt: str, document: dict[str, Any], headers: Sequence[str], rows: Sequence[Row],
          *, table: Callable[[], str] | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(_csv(headers, rows))
    else:
        click.echo(table() if table is not None else render_table(headers, rows))


# --- commands ----------------------------------------------------------------------


@click.group(cls=LazyGroup, lazy={
    "deliverability": ".cli_deliverability:report_deliverability",
    "recommendations": ".cli_products:report_recommendations"})
def report() -> None:
    """Reports: overview, attribution, journey funnels, experiments and marketing costs."""


@report.command("overview")
@common_options
@_SINCE
@_UNTIL
@_FORMAT
def report_overview(db: str | None, config_path: str | None, since: str | None,
                    until: str | None, fmt: str) -> None:
    """Events per day by origin, active profiles, conversions and revenue."""
    since_ms, until_ms = _window(since, until)
    with _opened(db, config_path) as (config, database):
        try:
            doc = views.overview_view(database.conn(), config, since_ms=since_ms,
                                      until_ms=until_ms)
        except WindowError as exc:
            raise click.BadParameter(str(exc).removeprefix(f"{exc.param}: "),
                                     param_hint=f"'--{exc.param}'") from None
    origins = sorted({o for d in doc["days"] for o in d["events"]})
    # the shop's events per origin, then Kanal's own (deliveries, segment changes …)
    headers = ["day", *origins, "kanal_events", "active_profiles", "conversions", "revenue"]
    rows: list[Row] = [[d["day"], *(d["events"].get(o, 0) for o in origins),
                        sum(d.get("own_events", {}).values()),
                        d["active_profiles"], d["conversions"], money(d["revenue"])]
                       for d in doc["days"]]
    totals = doc["totals"]

    def table() -> str:
        head = (f"events {totals['events']}  kanal events {totals['own_events']}  "
                f"active profiles {totals['active_profiles']}  "
                f"profiles {totals['profiles']}  conversions {totals['conversions']}  "
                f"revenue {money(totals['revenue'])}")
        return head + "\n\n" + render_table(headers, rows)

    _emit(fmt, doc, headers, rows, table=table)


@report.command("attribution")
@common_options
@_SINCE
@_UNTIL
@_FORMAT
@click.option("--model", "models", multiple=True, type=click.Choice(MODELS),
              help="Only this model (repeat for several; default every model).")
@click.option("--by", "dimension", type=click.Choice(DIMENSIONS), default="channel",
              show_default=True, help="Credit per channel, campaign or journey.")
@click.option("--lookback", help="Touchpoints count this long before a conversion "
                                 "(default [attribution] lookback, 30d).")
@click.option("--half-life", "half_life", help="Time-decay half-life (default 7d).")
@click.option("--goal", "goals", multiple=True,
              help="Conversion event name (repeat; default [attribution] goal_events).")
def report_attribution(db: str | None, config_path: str | None, since: str | None,
                       until: str | None, fmt: str, models: tuple[str, ...], dimension: str,
                       lookback: str | None, half_life: str | None,
                       goals: tuple[str, ...]) -> None:
    """Conversions and revenue credited to each channel, campaign or journey, per model."""
    since_ms, until_ms = _window(since, until)
    lookback_ms = _duration(lookback, "lookback")
    half_life_ms = _duration(half_life, "half_life")
    chosen = tuple(m for m in MODELS if m in models) or MODELS
    with _opened(db, config_path) as (config, database):
        settings = views.settings_for(config, lookback_ms=lookback_ms,
                                      half_life_ms=half_life_ms, goal_events=goals)
        doc = views.attribution_view(database.conn(), config, since_ms=since_ms,
                                     until_ms=until_ms, models=chosen, settings=settings)
    headers = ["model", dimension, "conversions", "revenue", "cost", "roas"]
    rows: list[Row] = [[model, r["key"], credit(r["conversions"]), money(r["revenue"]),
                        money(r["cost"]), ratio(r["roas"])]
                       for model in doc["models"]
                       for r in doc["models"][model].get(dimension, [])]

    def table() -> str:
        unattributed = doc["unattributed"]
        blocks = [f"conversions {doc['conversions']}  revenue {money(doc['revenue'])}  "
                  f"touchpoints {doc['touchpoints']}  unattributed "
                  f"{unattributed['conversions']} ({money(unattributed['revenue'])})"]
        for model, by_dim in doc["models"].items():
            body = [[r["key"], credit(r["conversions"]), money(r["revenue"]),
                     money(r["cost"]), ratio(r["roas"])] for r in by_dim.get(dimension, [])]
            blocks.append(f"{model} by {dimension}\n" + render_table(
                [dimension, "conversions", "revenue", "cost", "roas"], body))
        return "\n\n".join(blocks)

    _emit(fmt, doc, headers, rows, table=table)


_SUMMARY = ["entered", "active", "sent", "delivered", "opened", "clicked", "converted"]


@report.command("journeys")
@common_options
@_SINCE
@_UNTIL
@_FORMAT
def report_journeys(db: str | None, config_path: str | None, since: str | None,
                    until: str | None, fmt: str) -> None:
    """Every journey: runs entered in the window, sends, engagement, conversions."""
    since_ms, until_ms = _window(since, until)
    with _opened(db, config_path) as (_, database):
        doc = views.journeys_view(database.conn(), since_ms=since_ms, until_ms=until_ms)
    headers = ["journey", "enabled", *_SUMMARY, "revenue", "conversion_rate"]
    rows: list[Row] = [[j["journey"], "yes" if j["enabled"] else "no",
                        *(j[k] for k in _SUMMARY), money(j["revenue"]),
                        rate(j["conversion_rate"])] for j in doc["journeys"]]
    _emit(fmt, doc, headers, rows)


@report.command("journey")
@common_options
@click.argument("name")
@_SINCE
@_UNTIL
@_FORMAT
def report_journey(db: str | None, config_path: str | None, name: str, since: str | None,
                   until: str | None, fmt: str) -> None:
    """The funnel of journey NAME: how many runs reached, sent, converted at each step."""
    since_ms, until_ms = _window(since, until)
    with _opened(db, config_path) as (_, database):
        try:
            doc = views.journey_view(database.conn(), name, since_ms=since_ms,
                                     until_ms=until_ms)
        except LookupError:
            raise click.ClickException(f"no journey {name!r}") from None
    keys = ["reached", "sent", "delivered", "opened", "clicked", "converted"]
    headers = ["step", "kind", "message", "channel", *keys, "revenue"]
    rows: list[Row] = [[s["step"], s["kind"], s["message"] or "", s["channel"] or "",
                        *(s[k] for k in keys), money(s["revenue"])] for s in doc["steps"]]

    def table() -> str:
        t = doc["totals"]
        head = (f"{name}: entered {t['entered']}  active {t['active']}  sent {t['sent']}  "
                f"converted {t['converted']}  revenue {money(t['revenue'])}  "
                f"conversion rate {rate(t['conversion_rate'])}")
        return head + "\n\n" + render_table(headers, rows)

    _emit(fmt, doc, headers, rows, table=table)


@report.command("experiments")
@common_options
@click.option("--journey", help="Only this journey's split tests.")
@_SINCE
@_UNTIL
@_FORMAT
def report_experiments(db: str | None, config_path: str | None, journey: str | None,
                       since: str | None, until: str | None, fmt: str) -> None:
    """Split tests: each arm's conversion rate against the control, with lift, p-value
    and confidence interval (and a warning while samples are too small)."""
    since_ms, until_ms = _window(since, until)
    with _opened(db, config_path) as (_, database):
        try:
            doc = views.experiments_view(database.conn(), since_ms=since_ms,
                                         until_ms=until_ms, journey=journey)
        except LookupError:
            raise click.ClickException(f"no journey {journey!r}") from None
    headers = ["journey", "step", "arm", "control", "runs", "conversions", "rate", "revenue",
               "lift", "p_value", "ci_low", "ci_high", "significant", "warning"]
    rows: list[Row] = []
    for exp in doc["experiments"]:
        for arm in exp["arms"]:
            control = arm["arm"] == exp["control"]
            rows.append([exp["journey"], exp["step"], arm["arm"], "yes" if control else "no",
                         arm["runs"], arm["conversions"], rate(arm["rate"]),
                         money(arm["revenue"]), rate(arm["lift"]), ratio(arm["p_value"]),
                         rate(arm["ci_low"]), rate(arm["ci_high"]),
                         Cell(None, "-") if control
                         else ("yes" if arm["significant"] else "no"),
                         arm["warning"] or ""])

    def table() -> str:
        if not doc["experiments"]:
            return "no split tests in this window"
        blocks = []
        for exp in doc["experiments"]:
            body = [r[2:13] for r in rows if r[0] == exp["journey"] and r[1] == exp["step"]]
            text = f"{exp['journey']} / {exp['step']} (control: {exp['control']})\n"
            text += render_table(headers[2:13], body)
            for arm in exp["arms"]:
                if arm["warning"]:
                    text += f"\n  ! {arm['arm']}: {arm['warning']}"
            blocks.append(text)
        return "\n\n".join(blocks)

    _emit(fmt, doc, headers, rows, table=table)


@report.group("costs", invoke_without_command=True)
@common_options
@_FORMAT
@click.pass_context
def report_costs(ctx: click.Context, db: str | None, config_path: str | None,
                 fmt: str) -> None:
    """Marketing costs per channel, campaign or journey (used for cost and ROAS).

    Without a subcommand, list them (from the API/CLI and from kanal.toml's [costs]).
    """
    if ctx.invoked_subcommand is not None:
        return
    with _opened(db, config_path) as (config, database):
        doc = views.costs_view(database.conn(), config)
    headers = ["dimension", "key", "amount", "currency", "source"]
    rows: list[Row] = [[c["dimension"], c["key"], money(c["amount"]), c["currency"] or "",
                        c["source"]] for c in doc["costs"]]
    _emit(fmt, doc, headers, rows)


# A negative AMOUNT (-5) is an argument to refuse with a plain message, not an option.
@report_costs.command("set", context_settings={"ignore_unknown_options": True})
@common_options
@click.argument("dimension", type=click.Choice(DIMENSIONS))
@click.argument("key")
@click.argument("amount")
@click.option("--currency", help="Currency code, e.g. EUR.")
def report_costs_set(db: str | None, config_path: str | None, dimension: str, key: str,
                     amount: str, currency: str | None) -> None:
    """Set the cost of KEY (a channel, campaign or journey) to AMOUNT (a number ≥ 0)."""
    value = money_amount(amount)
    if value is None or value < 0:
        raise click.ClickException(f"AMOUNT must be a number of at least 0 (like 120 or "
                                   f"120.50), not {amount!r}")
    with _opened(db, config_path) as (_, database):
        set_cost(database.conn(), dimension, key, value, currency, _now_ms())
    click.echo(f"Set the cost of {dimension} {key!r} to {money(value)}"
               f"{' ' + currency if currency else ''}.")


@report_costs.command("delete")
@common_options
@click.argument("dimension", type=click.Choice(DIMENSIONS))
@click.argument("key")
def report_costs_delete(db: str | None, config_path: str | None, dimension: str,
                        key: str) -> None:
    """Remove the cost of KEY set through the API or CLI."""
    with _opened(db, config_path) as (_, database):
        if not delete_cost(database.conn(), dimension, key):
            raise click.ClickException(f"no cost for {dimension} {key!r}")
    click.echo(f"Removed the cost of {dimension} {key!r}.")
