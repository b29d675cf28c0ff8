"""What every `kanal` command shares: --db and --config, the config, the database.

The command modules (cli_*.py) import these; `cli.py` imports the command modules and
registers their commands on the `kanal` group, so the import graph points one way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import Config, load_config
from .errors import KanalError
from .profiles.identity import default_country
from .store.db import Database, missing_file
from .store.schema import migrate

F = TypeVar("F", bound=Callable[..., Any])


_CREATE_DB = "kanal.create_db"
_CONFIG = "kanal.config"


def _remember_create(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_CREATE_DB] = True


def common_options(func: F) -> F:
    """--db, --config and --create-db, shared by every command."""
    func = click.option("--create-db", is_flag=True, expose_value=False,
                        callback=_remember_create,
                        help="Create the database file when it doesn't exist (otherwise "
                             "a missing file is an error: a mistyped --db must not "
                             "start an empty database).")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="Config file (default ./kanal.toml or $KANAL_CONFIG).")(func)
    func = click.option("--db", metavar="PATH|URL",
                        help="SQLite file or postgresql:// URL "
                             "(default ./kanal.db or $KANAL_DB).")(func)
    return func


def missing_database(db: str | Path) -> str | None:
    """What to say when the database file `db` doesn't exist; None when it does (or
    is named by a URL: only file paths are checked)."""
    if not missing_file(db):
        return None
    return (f"no database at {db}: check --db, KANAL_DB or `db` in kanal.toml (the "
            "database `kanal serve` created), or pass --create-db to start a new one")


def _config(config_path: str | None, **overrides: Any) -> Config:
    try:
        return load_config(config_path, overrides=overrides)
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None


def _database(config: Config) -> Database:
    ctx = click.get_current_context(silent=True)
    create = ctx is not None and bool(ctx.find_root().meta.get(_CREATE_DB)
                                      or ctx.meta.get(_CREATE_DB))
    problem = None if create else missing_database(config.db)
    if problem:
        raise click.ClickException(problem)
    db = Database(config.db, synchronous=config.synchronous, busy_timeout=config.busy_timeout)
    try:
        migrate(db.conn())
    except Exception as exc:
        raise click.ClickException(f"cannot open {db.display}: {exc}") from None
    return db


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def current_config() -> Config:
    """The config a `with_db` command was started with."""
    config = click.get_current_context().meta.get(_CONFIG)
    if not isinstance(config, Config):
        raise RuntimeError("current_config() outside a with_db command")
    return config


def country_setting(config: Config) -> str | None:
    """`[profiles] default_country`, or a click error naming the key."""
    try:
        return default_country(config)
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None


def with_db(func: Callable[..., Any]) -> Callable[..., Any]:
    """Open the database named by --db/--config and pass it as `db`."""

    @functools.wraps(func)
    def wrapper(db: str | None, config_path: str | None, **kwargs: Any) -> Any:
        config = _config(config_path, db=db)
        click.get_current_context().meta[_CONFIG] = config
        database = _database(config)
        try:
            return func(database, **kwargs)
        except (KanalError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            database.close()

    return wrapper
