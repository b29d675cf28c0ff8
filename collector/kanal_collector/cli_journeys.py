"""`kanal journeys validate|list|reload|why|simulate`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from .cli_common import _config, _database, _when, common_options
from .errors import KanalError
from .journeys.definition import journey_files, load_file
from .journeys.errors import JourneyFileError
from .journeys.references import references_for
from .journeys.timers import sync
from .journeys.validation import message_kinds, validate
from .messages.catalog import messages_dir
from .products.checks import product_problems
from .profiles.segments import SegmentError, duration_ms
from .store import journeys as store
from .store.connection import DB_ERRORS
from .store.copy import CopyError
from .store.db import missing_file, transaction

_DIR = click.option("--dir", "directory", type=click.Path(file_okay=False),
                    help="Journeys directory (default journeys_dir from the config, "
                         "or ./journeys).")

_SIMULATE_ERRORS: tuple[type[Exception], ...] = (
    KanalError, ValueError, OSError, RuntimeError, CopyError, *DB_ERRORS)
"""What a simulation may fail with, said in one line."""


@click.group()
def journeys() -> None:
    """Journey files: validate them, list them and their runs, load them now."""


@journeys.command("validate")
@common_options
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--messages-dir", "messages_path", type=click.Path(file_okay=False),
              help="Check send steps against these message files (default: the "
                   "configured messages directory, when it exists).")
def journeys_validate(db: str | None, config_path: str | None, files: tuple[str, ...],
                      messages_path: str | None) -> None:
    """Check journey FILEs (default: every file in the journeys directory).

    Every problem is printed as FILE:LINE: FIELD: WHAT; the exit status is 1 when any
    file has one.
    """
    config = _config(config_path, db=db)
    paths = [Path(f) for f in files] or journey_files(config.journeys_dir)
    if not paths:
        raise click.ClickException(f"no journey files in {config.journeys_dir}")
    try:
        journeys, problems = validate(
            config, paths, messages_path=Path(messages_path) if messages_path else None)
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    for problem in problems:
        click.echo(str(problem), err=True)
    for journey in journeys.values():
        click.echo(f"{journey.source}: OK ({journey.name}, {len(journey.steps)} steps, "
                   f"version {journey.hash})")
    bad = {p.source for p in problems}
    unknown_ids = product_problems(config, paths, kind="journey")
    for line in unknown_ids:
        click.echo(line, err=True)
    bad |= {line.split(":", 1)[0] for line in unknown_ids}
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(paths)} journey file(s) have "
                                   "problems")


@journeys.command("list")
@common_options
def journeys_list(db: str | None, config_path: str | None) -> None:
    """The journeys the database knows: version, enabled, runs by state, conversions."""
    config = _config(config_path, db=db)
    database = _database(config)
    try:
        conn = database.conn()
        counts = store.run_counts(conn)
        known = store.current(conn)
        if not known:
            click.echo(f"no journeys loaded yet (files in {config.journeys_dir} are loaded "
                       "by `kanal serve` or `kanal journeys reload`)")
        for name, version, enabled in known:
            states = {s: n for (j, s), n in counts.items() if j == name}
            runs = " ".join(f"{s}={n}" for s, n in sorted(states.items())) or "no runs"
            conversions = len(store.conversions(conn, name))
            updated = store.versions(conn, name)[-1]["created_at"]
            click.echo(f"{name}\tv{version}\t{'enabled' if enabled else 'disabled'}\t"
                       f"{runs}\tconversions={conversions}\t{_when(updated)}")
    finally:
        database.close()


@journeys.command("reload")
@common_options
@_DIR
def journeys_reload(db: str | None, config_path: str | None, directory: str | None) -> None:
    """Load the journey files into the database now (a changed file is a new version).

    `kanal serve` does this by itself when the files change.
    """
    config = _config(config_path, db=db)
    database = _database(config)
    try:
        with transaction(database.conn()) as conn:
            result = sync(conn, Path(directory) if directory else config.journeys_dir,
                          int(time.time() * 1000), references_for(config, None))
    finally:
        database.close()
    for name, version, new in result.loaded:
        click.echo(f"{name}\tv{version}\t{'new version' if new else 'unchanged'}")
    for name in result.disabled:
        click.echo(f"{name}\tdisabled (its file is gone)")
    for problem in result.problems:
        click.echo(str(problem), err=True)
    if result.problems:
        raise click.ClickException("some journey files were not loaded")


class _NotFound(click.ClickException):
    """An unknown person or journey: exit status 2, like other bad arguments."""

    exit_code = 2


@journeys.command("why")
@common_options
@click.argument("user")
@click.argument("journey")
@click.option("--json", "as_json", is_flag=True, help="The same as one JSON document.")
def journeys_why(db: str | None, config_path: str | None, user: str, journey: str,
                 as_json: bool) -> None:
    """What happened to USER in JOURNEY, and why each message was or wasn't sent.

    USER is a userId, email, phone, anonymousId or profile:ID (merges are followed).
    For each run, newest first: when and on which event it started, every step it
    reached (waits and until when, conditions, split arms, sends), each send's outbox
    state in plain words (sent, deferred or skipped for quiet hours, a frequency cap,
    the daily budget, unsubscribed, suppressed, no recipient…) with times in UTC and
    in the person's timezone, and how the run ended (completed, converted with its
    revenue, holdout, expired, exited). Trigger events that started no run are listed
    with the reason (entry rule once or once_per, a dedupe key already used, a run
    already active, no match for `where`). Reads only; an unknown USER or JOURNEY
    exits with status 2.
    """
    from .journeys.explain import WhyError, explain, render

    config = _config(config_path, db=db)
    if missing_file(config.db):  # reads only: never create an empty database
        raise click.ClickException(f"no database at {config.db}")
    database = _database(config)
    try:
        report = explain(database.conn(), user, journey, now_ms=int(time.time() * 1000))
    except WhyError as exc:
        raise _NotFound(str(exc)) from None
    finally:
        database.close()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(render(report))


def _moment(value: str, now_ms: int, option: str) -> int:
    """`30d` (that long before now), an ISO date or datetime (UTC unless it says), or `now`."""
    text = value.strip()
    if text == "now":
        return now_ms
    try:
        ms = now_ms - duration_ms(text, option)
    except SegmentError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"a duration before now (30d, 12h) or an ISO date, "
                                     f"not {value!r}", param_hint=option) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
    if ms < 0:
        raise click.BadParameter(f"{value!r} is before 1970", param_hint=option)
    return ms


@journeys.command("simulate")
@common_options
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--since", default="30d", show_default=True,
              help="Where the journey starts taking entries: a duration before now (30d) "
                   "or an ISO date.")
@click.option("--until", default="now", show_default=True,
              help="Where the replay stops (timers and sends due by then happen).")
@click.option("--limit", type=click.IntRange(0, 100_000), default=20, show_default=True,
              help="How many people's timelines to show.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON document.")
def journeys_simulate(db: str | None, config_path: str | None, file: str, since: str,
                      until: str, limit: int, as_json: bool) -> None:
    """Replay the event log through the journey in FILE; send nothing, change nothing.

    The database is copied to a temporary file (deleted afterwards) and the log is
    replayed on a fake clock through the real processor, timer worker and dispatcher,
    with only this journey loaded from --since on, so entry rules, waits, quiet hours,
    caps, the daily budget and eligibility (unsubscribed, no recipient…) apply as they
    would have live. Reports who would have entered, each message (channel, time, or
    why skipped/deferred) and who would have converted, with revenue.

    Approximations: opens and clicks of simulated sends are not invented (a wait for
    Email Opened times out); Kanal's own events from --since on are replaced by the
    simulation's, except unsubscribes; other journeys are not replayed (caps and the
    budget count only this journey's messages); webhook steps call nothing, the calls
    are listed; before_send hooks don't run; split arms are drawn afresh; a file with
    `enabled: false` is simulated as enabled.
    An invalid FILE prints its problems (with line numbers) and exits with status 2.
    """
    from .journeys.simulate import Simulator, timelines

    config = _config(config_path, db=db)
    path = Path(file)
    try:
        kinds = message_kinds(messages_dir(config))
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        journey = load_file(path, references=references_for(config, kinds))
    except JourneyFileError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise _NotFound(f"{file}: {len(exc.problems)} problem(s); nothing simulated") from None
    now_ms = int(time.time() * 1000)
    start = _moment(since, now_ms, "--since")
    end = _moment(until, now_ms, "--until")
    if end < start:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    if missing_file(config.db):
        raise click.ClickException(f"no database at {config.db}")

    def progress(done: int, total: int) -> None:
        click.echo(f"\rreplayed {done}/{total} events", err=True, nl=done == total)

    try:
        sim = Simulator(config, journey, since=start, until=end, progress=progress).run()
    except _SIMULATE_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    summary = sim.summary()
    people = timelines(sim, limit)
    if as_json:
        click.echo(json.dumps({"journey": journey.name, "since": start, "until": end,
                               "events": sim.events, **summary, "timelines": people,
                               "webhooks": sim.webhooks},
                              ensure_ascii=False, indent=2, default=str))
        return
    click.echo(f"Simulated {journey.name} from {_when(start)} to {_when(end)} over "
               f"{sim.events} events (nothing was sent).")
    click.echo(f"Entered: {summary['entered']} runs by {summary['people']} people")
    refused = summary["notEntered"]
    if refused:
        click.echo(f"Trigger events that started no run: {sum(r['count'] for r in refused)}")
        for row in refused:
            click.echo(f"  {row['code']}\t{row['count']}\t{row['text']}")
    for row in summary["sends"]:
        click.echo(f"  {row['message']}\t{row['channel']}\t{row['state']}\t{row['count']}")
    click.echo(f"Converted: {summary['conversions']} (revenue {summary['revenue']:g})")
    if sim.webhooks:
        click.echo(f"Webhook calls that would have been made: {len(sim.webhooks)}")
    for person in people:
        click.echo(f"\n{person['person']}")
        for run in person["runs"]:
            click.echo(f"  entered {_when(run['enteredAt'])}"
                       + (f" (event #{run['triggerEvent']})" if run["triggerEvent"] else ""))
            for send in run["sends"]:
                why = f" ({send['reason']})" if send["reason"] else ""
                click.echo(f"    {_when(send['at'])}  {send['message']} on "
                           f"{send['channel'] or '-'}: {send['state']}{why}")
            if run["conversion"]:
                revenue = run["conversion"]["revenue"]
                click.echo(f"    {_when(run['conversion']['at'])}  converted "
                           f"({run['conversion']['event']}"
                           + (f", revenue {revenue:g})" if revenue is not None else ")"))
            click.echo(f"  {run['state']}"
                       + (f" at {_when(run['endedAt'])}: {run['endReason']}"
                          if run["endedAt"] else ""))
