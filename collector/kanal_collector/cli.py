"""The `kanal` command. Every command takes --db and --config."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from .config import Config, load_config
from .errors import KanalError
from .store import keys as keystore
from .store.db import Database
from .store.events import recent_events, recent_failed
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


@click.group()
@click.version_option(package_name="kanal")
def cli() -> None:
    """Kanal: a cross-channel marketing engine in one process and one SQLite file."""


@cli.command()
@common_options
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000; 0 picks one).")
@click.option("--threads", type=int, help="Request threads (default 16).")
@click.option("--no-workers", is_flag=True,
              help="Only ingest; leave the processor to another process.")
def serve(db: str | None, config_path: str | None, host: str | None, port: int | None,
          threads: int | None, no_workers: bool) -> None:
    """Run the collector and its workers (processor, …) in this process."""
    from .server import serve as run

    config = _config(config_path, db=db, host=host, port=port, threads=threads,
                     run_workers=False if no_workers else None)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        run(config, echo=click.echo)
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group()
def sources() -> None:
    """Places events come from (website, app, backend); each has its own keys."""


@sources.command("create")
@common_options
@click.argument("name")
@with_db
def sources_create(db: Database, name: str) -> None:
    """Add a source called NAME."""
    keystore.create_source(db.conn(), name, _now_ms())
    click.echo(f"Created source {name!r}. Give it keys with "
               f"`kanal keys create --kind public --source {name}`.")


@sources.command("list")
@common_options
@with_db
def sources_list(db: Database) -> None:
    """List the sources."""
    for sid, name, created in keystore.list_sources(db.conn()):
        click.echo(f"{sid}\t{name}\tcreated {_when(created)}")


@cli.group()
def keys() -> None:
    """Public keys (browser, app), secret keys (backend) and admin keys."""


@keys.command("create")
@common_options
@click.option("--kind", type=click.Choice(keystore.KINDS), required=True,
              help="public: browsers and apps; secret: backends; admin: API and dashboard.")
@click.option("--source", help="Source of a public or secret key (default: default).")
@click.option("--name", help="A note to recognise the key by.")
@with_db
def keys_create(db: Database, kind: str, source: str | None, name: str | None) -> None:
    """Create a key; the key itself is printed on the last line, only this once."""
    key = keystore.create_key(db.conn(), kind, _now_ms(), source=source, name=name)
    where = "" if kind == "admin" else f" for source {source or 'default'!r}"
    article = "an" if kind == "admin" else "a"
    click.echo(f"Created {article} {kind} key{where}. It is shown only now:")
    click.echo(key)


@keys.command("list")
@common_options
@with_db
def keys_list(db: Database) -> None:
    """List keys by prefix (keys themselves are never shown again)."""
    for k in keystore.list_keys(db.conn()):
        state = f"revoked {_when(k.revoked_at)}" if k.revoked else "active"
        click.echo(f"{k.prefix}…\t{k.kind}\t{k.source_name or '-'}\t{k.name or ''}\t"
                   f"created {_when(k.created_at)}\t{state}")


@keys.command("revoke")
@common_options
@click.argument("key")
@with_db
def keys_revoke(db: Database, key: str) -> None:
    """Revoke KEY (the whole key or the prefix `keys list` shows); takes effect in seconds."""
    info = keystore.revoke_key(db.conn(), key.rstrip("…"), _now_ms())
    click.echo(f"Revoked {info.kind} key {info.prefix}… ({_when(info.revoked_at)}).")


@cli.group()
def events() -> None:
    """Look at the event log."""


@events.command("list")
@common_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@with_db
def events_list(db: Database, limit: int, as_json: bool) -> None:
    """The newest events, newest first."""
    for e in recent_events(db.conn(), limit=limit):
        if as_json:
            click.echo(json.dumps({"id": e.id, "origin": e.origin, "keyKind": e.key_kind,
                                   "verified": e.verified, **e.body}))
        else:
            who = e.user_id or f"anon:{e.anonymous_id}"
            click.echo(f"{e.id}\t{_when(e.timestamp)}\t{e.origin}\t{e.type}\t"
                       f"{e.event or ''}\t{who}")


@events.command("failed")
@common_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@with_db
def events_failed(db: Database, limit: int) -> None:
    """Events that were refused, with the reason (newest first)."""
    for row in recent_failed(db.conn(), limit=limit):
        click.echo(f"{row['id']}\t{_when(row['received_at'])}\t{row['reason']}\t"
                   f"{row['body'][:200]}")

# The command groups of the other parts register themselves on `cli` when imported.
from . import (  # noqa: E402,F401
    cli_channels,
    cli_deliverability,
    cli_journeys,
    cli_messages,
    cli_products,
    cli_profiles,
    cli_report,
    cli_tracking,
)
