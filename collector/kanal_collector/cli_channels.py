"""`kanal plugins`: which plugins are loaded, which channels and ads destinations they
bring, which are set up."""

from __future__ import annotations

import json

import click

from .audiences.plugins import destination_summary
from .channels.plugins import plugin_summary
from .cli_common import _config, common_options
from .errors import KanalError
from .setup_checks import run_checks


@click.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--check", is_flag=True,
              help="Also build each configured channel and audience destination "
                   "(settings and secrets are checked; nothing is sent and nothing "
                   "connects).")
def plugins(db: str | None, config_path: str | None, as_json: bool, check: bool) -> None:
    """List loaded plugins, the channels and destinations they provide, and which are
    configured."""
    config = _config(config_path, db=db)
    try:
        summary = plugin_summary(config)
        summary["destinations"] = destination_summary(config)
        failed = [c for c in run_checks(config) if not c.ok] if check else []
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    if failed:
        raise click.ClickException("\n".join(c.detail for c in failed))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo("Plugins:")
    for p in summary["plugins"]:
        origin = "built in" if p["builtin"] else (
            f"{p['distribution']} {p['version']}" if p["distribution"] else "registered")
        click.echo(f"  {p['name']}\t{origin}\thooks: {', '.join(p['hooks']) or '-'}")
    click.echo("Channels:")
    for c in summary["channels"]:
        configured = ", ".join(c["configured_as"]) or "not configured"
        click.echo(f"  {c['name']}\tkind {c['kind']}\tfrom {c['plugin']}\t"
                   f"[channels.…]: {configured}")
    for name in summary["unknown_configured"]:
        click.echo(f"  ! [channels.{name}] names a channel type no plugin provides")
    click.echo("Destinations (ads audiences):")
    for d in summary["destinations"]:
        configured = ", ".join(d["configured_as"]) or "not configured"
        click.echo(f"  {d['name']}	from {d['plugin']}	[audiences.…]: {configured}")
    if check:
        click.echo("All configured channels and audiences are valid.")
