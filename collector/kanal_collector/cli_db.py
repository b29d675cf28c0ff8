"""`kanal db …`: the storage engine's own chores (copying a database to another engine)."""

from __future__ import annotations

import time

import click

from .cli_common import _config, _database, common_options
from .errors import KanalError
from .store.connection import DB_ERRORS
from .store.copy import CopyError, Progress, TableCopy, copy_database
from .store.db import Database, masked, same_database
from .store.schema import migrate

_ERRORS: tuple[type[Exception], ...] = (KanalError, CopyError, ValueError, *DB_ERRORS)


@click.group()
def db() -> None:
    """The database itself: copy it to another engine."""


@db.command("copy")
@common_options
@click.option("--to", "target", required=True, metavar="URL|PATH",
              help="Where to copy to: a postgresql:// URL (or a SQLite file).")
def copy(db: str | None, config_path: str | None, target: str) -> None:
    """Copy this database (--db) into another one, e.g. SQLite into PostgreSQL.

    The target is created or migrated to this Kanal's schema, then every table is made
    equal to the source, a page of rows at a time: a copy that was stopped continues
    where it stopped when run again, and a second run brings a copy made while Kanal
    served up to date. Each table's rows and digest are printed for both sides.
    """
    config = _config(config_path, db=db)
    if same_database(config.db, target):
        raise click.ClickException("--to names the database being copied")
    source = _database(config)
    destination = Database(target, busy_timeout=config.busy_timeout)
    try:
        src, dst = source.conn(), destination.connect()
        migrate(dst)
        click.echo(f"Copying {masked(config.db)} to {masked(target)}")
        results = []
        for result in copy_database(src, dst, progress=_progress()):
            results.append(result)
            click.echo(_line(result))
    except _ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        destination.close()
        source.close()
    differing = [r.table for r in results if not r.same]
    if differing:
        raise click.ClickException(
            f"{len(differing)} table(s) differ ({', '.join(differing)}): the source changed "
            "while it was copied. Stop Kanal and run the copy again to finish it.")
    written = sum(r.rows_written for r in results)
    click.echo(f"Done: {len(results)} tables, {written} rows written; every table's rows "
               "and digest match.")


def _line(r: TableCopy) -> str:
    state = "ok" if r.same else "DIFFERS"
    return (f"  {r.table:<22} rows {r.source_rows:>10} -> {r.target_rows:<10} "
            f"digest {r.source_digest} -> {r.target_digest}  "
            f"written {r.rows_written}, removed {r.rows_deleted}  {state}")


def _progress() -> Progress:
    last = [0.0]

    def show(table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 1.0:
            return
        last[0] = now
        click.echo(f"\r  {table:<22} {done}/{total} rows", err=True, nl=done >= total)

    return show
