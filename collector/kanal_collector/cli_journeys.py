"""`kanal journeys validate|list|reload`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .cli import _config, _database, _when, cli, common_options
from .errors import KanalError
from .journeys.definition import journey_files, load_file
from .journeys.errors import JourneyFileError
from .journeys.timers import sync
from .messages.catalog import load_directory as load_messages
from .messages.catalog import messages_dir
from .store import journeys as store
from .store.db import transaction

_DIR = click.option("--dir", "directory", type=click.Path(file_okay=False),
                    help="Journeys directory (default journeys_dir from the config, "
                         "or ./journeys).")


@cli.group()
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
    names = _message_names(Path(messages_path) if messages_path else messages_dir(config))
    bad = 0
    for path in paths:
        try:
            journey = load_file(path, messages=names)
        except JourneyFileError as exc:
            bad += 1
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            continue
        click.echo(f"{path}: OK ({journey.name}, {len(journey.steps)} steps, "
                   f"version {journey.hash})")
    if bad:
        raise click.ClickException(f"{bad} of {len(paths)} journey file(s) have problems")


def _message_names(directory: Path) -> set[str] | None:
    if not directory.is_dir():
        return None
    try:
        return set(load_messages(directory))
    except KanalError as exc:
        raise click.ClickException(f"message files: {exc}") from None


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
                          int(time.time() * 1000))
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
