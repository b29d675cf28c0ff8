"""`kanal messages validate|list|preview` and `kanal outbox [show|retry]`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from .cli_common import _config, _database, _when, common_options
from .config import Config
from .errors import KanalError
from .journeys.definition import journey_files, load_files
from .journeys.references import references_for
from .messages.catalog import Catalog, load_directory, message_files, messages_dir
from .messages.errors import DefinitionError
from .messages.manual import RetryRefused, preview, retry
from .products.checks import product_problems
from .profiles.views import lookup
from .store import outbox as store
from .store.db import Database

_DIR = click.option("--dir", "directory", type=click.Path(file_okay=False),
                    help="Messages directory (default [messages] messages_dir or ./messages).")


def _open(db: str | None, config_path: str | None) -> tuple[Config, Database]:
    config = _config(config_path, db=db)
    return config, _database(config)


def _catalog(config: Config, directory: str | None) -> Catalog:
    path = Path(directory) if directory else messages_dir(config)
    try:
        return Catalog(load_directory(path), path)
    except DefinitionError as exc:
        for problem in [str(p) for p in exc.problems] or [str(exc)]:
            click.echo(str(problem), err=True)
        count = max(len(exc.problems), 1)
        raise click.ClickException(f"{count} problem(s) in the message files of {path}"
                                   ) from None
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def messages() -> None:
    """Message definitions: validate the files, list them, preview one for a person."""


@messages.command("validate")
@common_options
@_DIR
def messages_validate(db: str | None, config_path: str | None, directory: str | None) -> None:
    """Check every message file (YAML, fields, templates).

    Every problem of every file is printed as FILE:LINE: FIELD: WHAT; the exit status is
    1 when there is one. Then the send steps of the journey files that use them: each
    must name a message that exists, and channels the config has (or the built-in ones
    without any [channels] table) for which the message has content; each problem as
    FILE:LINE.
    """
    config = _config(config_path, db=db)
    catalog = _catalog(config, directory)
    assert catalog.directory is not None
    problems = product_problems(config, message_files(catalog.directory), kind="message")
    if problems:
        raise click.ClickException("\n".join(problems))
    click.echo(f"{len(catalog.messages)} message(s) OK in {catalog.directory}")
    kinds = {name: m.kinds for name, m in catalog.messages.items()}
    try:
        _, found = load_files(journey_files(config.journeys_dir),
                              references_for(config, kinds))
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    sends = [p for p in found if p.where.endswith((".send", ".channel"))
             or ".fallbacks[" in p.where]
    for problem in sends:
        click.echo(str(problem), err=True)
    if sends:
        raise click.ClickException(f"{len(sends)} send step(s) in {config.journeys_dir} "
                                   "name a message or channel that isn't there")


@messages.command("list")
@common_options
@_DIR
def messages_list(db: str | None, config_path: str | None, directory: str | None) -> None:
    """List the messages: name, kind, topic, channel kinds and languages."""
    config = _config(config_path, db=db)
    for name, m in sorted(_catalog(config, directory).messages.items()):
        click.echo(f"{name}\t{m.kind}\t{m.topic or '-'}\t{','.join(sorted(m.kinds))}\t"
                   f"{','.join(m.languages)}")


@messages.command("preview")
@common_options
@_DIR
@click.argument("message")
@click.argument("user")
@click.option("--channel", help="Channel name or kind (default: the message's first kind).")
@click.option("--language", help="Render in this language instead of the profile's.")
@click.option("--data", "data_json", help="JSON object templates see as `data`.")
def messages_preview(db: str | None, config_path: str | None, directory: str | None,
                     message: str, user: str, channel: str | None, language: str | None,
                     data_json: str | None) -> None:
    """Render MESSAGE for the profile of USER (any identity) as it would be sent."""
    config, database = _open(db, config_path)
    try:
        data: dict[str, Any] = {}
        if data_json:
            try:
                data = json.loads(data_json)
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"--data is not JSON: {exc}") from None
            if not isinstance(data, dict):
                raise click.ClickException("--data must be a JSON object")
        definition = _catalog(config, directory).get(message)
        conn = database.conn()
        pid = lookup(conn, user)
        if pid is None:
            raise click.ClickException(f"no profile has the identity {user!r}")
        shown = preview(conn, config, definition, pid, channel=channel, language=language,
                        data=data, now_ms=int(time.time() * 1000))
        click.echo(f"message:   {shown.message} ({shown.message_kind})")
        click.echo(f"profile:   {shown.profile_id}")
        click.echo(f"channel:   {shown.channel} ({shown.channel_kind})")
        click.echo(f"recipient: {shown.recipient or '-'}")
        click.echo(f"language:  {shown.language}")
        click.echo(f"would send: {'yes' if shown.refusal is None else 'no, ' + shown.refusal}")
        for field, text in shown.fields():
            click.echo(f"--- {field} ---")
            click.echo(text)
    except (KanalError, ValueError) as exc:  # ValueError: a bad [products] setting
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()


@click.group(invoke_without_command=True)
@common_options
@click.option("--state", type=click.Choice(store.STATES), help="Only rows in this state.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.pass_context
def outbox(ctx: click.Context, db: str | None, config_path: str | None, state: str | None,
           limit: int, as_json: bool) -> None:
    """Messages queued, sent, failed, skipped or in doubt (newest first)."""
    ctx.ensure_object(dict)
    ctx.obj.update(db=db, config_path=config_path)
    if ctx.invoked_subcommand is not None:
        return
    _, database = _open(db, config_path)
    try:
        conn = database.conn()
        rows = store.listing(conn, state=state, limit=limit)
        if as_json:
            for row in rows:
                click.echo(json.dumps(row.as_json(), ensure_ascii=False))
            return
        totals = store.counts(conn)
        click.echo("  ".join(f"{s}: {totals.get(s, 0)}" for s in store.STATES))
        for row in rows:
            click.echo(f"{row.id}\t{row.state}\t{row.channel or '-'}\t{row.message}\t"
                       f"profile {row.profile_id}\t{_when(row.updated_at)}\t"
                       f"attempts {row.attempts}\t{row.reason or ''}")
    finally:
        database.close()


@outbox.command("show")
@common_options
@click.argument("outbox_id", type=int)
@click.pass_context
def outbox_show(ctx: click.Context, db: str | None, config_path: str | None,
                outbox_id: int) -> None:
    """Show one outbox row as JSON."""
    _, database = _open(db or ctx.obj.get("db"), config_path or ctx.obj.get("config_path"))
    try:
        row = store.get(database.conn(), outbox_id)
        if row is None:
            raise click.ClickException(f"no outbox row {outbox_id}")
        click.echo(json.dumps(row.as_json(), ensure_ascii=False, indent=2))
    finally:
        database.close()


@outbox.command("retry")
@common_options
@click.argument("outbox_id", type=int)
@click.option("--failed", is_flag=True, help="Also queue a failed row again.")
@click.pass_context
def outbox_retry(ctx: click.Context, db: str | None, config_path: str | None,
                 outbox_id: int, failed: bool) -> None:
    """Queue an in-doubt row again, after checking with the provider it wasn't sent."""
    _, database = _open(db or ctx.obj.get("db"), config_path or ctx.obj.get("config_path"))
    try:
        try:
            retry(database.conn(), outbox_id, int(time.time() * 1000), failed=failed)
        except RetryRefused as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Queued outbox row {outbox_id} again")
    finally:
        database.close()
