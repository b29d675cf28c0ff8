"""The `kanal` command. Every command takes --db and --config."""

from __future__ import annotations

import json
import logging

import click

from . import cli_events
from .cli_common import _config, _now_ms, _when, common_options, with_db
from .cli_lazy import LazyGroup
from .errors import KanalError
from .store import keys as keystore
from .store.db import Database
from .store.events import recent_events, recent_failed

# The commands of the other parts, imported when used (cli_lazy.py): the one place that
# knows them all.
_PARTS = {
    "audiences": ".cli_audiences:audiences",
    "bounces": ".cli_deliverability:bounces",
    "dashboard": ".cli_dashboard:dashboard",
    "db": ".cli_db:db",
    "email": ".cli_deliverability:email",
    "forget": ".cli_profiles:forget",
    "import": ".cli_profiles:import_",
    "journeys": ".cli_journeys:journeys",
    "messages": ".cli_messages:messages",
    "onsite": ".cli_onsite:onsite",
    "outbox": ".cli_messages:outbox",
    "plugins": ".cli_channels:plugins",
    "predict": ".cli_predict:predict",
    "products": ".cli_products:products",
    "profiles": ".cli_profiles:profiles",
    "recommend": ".cli_products:recommend_command",
    "report": ".cli_report:report",
    "segments": ".cli_profiles:segments",
    "suppressions": ".cli_deliverability:suppressions",
    "tracking": ".cli_tracking:tracking",
    "webpush": ".cli_onsite:webpush",
}


@click.group(cls=LazyGroup, lazy=_PARTS)
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

events.add_command(cli_events.prune_command)
