"""What every `kanal` command shares: --db and --config, the config, the database.

The command modules (cli_*.py) import these; `cli.py` imports the command modules and
registers their commands on the `kanal` group, so the import graph points one way.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from .config import Config, load_config
from .errors import KanalError
from .store.db import Database
from .store.schema import migrate

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """--db and --config, shared by every command."""
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="Config file (default ./kanal.toml or $KANAL_CONFIG).")(func)
    func = click.option("--db", type=click.Path(dir_okay=False),
                        help="SQLite database file (default ./kanal.db or $KANAL_DB).")(func)
    return func


def _config(config_path: str | None, **overrides: Any) -> Config:
    try:
        return load_config(config_path, overrides=overrides)
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None


def _database(config: Config) -> Database:
    db = Database(config.db, synchronous=config.synchronous, busy_timeout=config.busy_timeout)
    try:
        migrate(db.conn())
    except Exception as exc:
        raise click.ClickException(f"cannot open {config.db}: {exc}") from None
    return db


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def with_db(func: Callable[..., Any]) -> Callable[..., Any]:
    """Open the database named by --db/--config and pass it as `db`."""

    @functools.wraps(func)
    def wrapper(db: str | None, config_path: str | None, **kwargs: Any) -> Any:
        database = _database(_config(config_path, db=db))
        try:
            return func(database, **kwargs)
        except (KanalError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            database.close()

    return wrapper
