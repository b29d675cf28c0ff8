"""`kanal onsite validate|list|report` and `kanal webpush keys`."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import click

from .channels.webpush import load_vapid, public_key_b64
from .cli_common import _config, _database, common_options
from .cli_report import _SINCE, _UNTIL, _window
from .config import Config, resolve_secret
from .errors import KanalError
from .messages.catalog import load_directory as load_messages
from .messages.catalog import messages_dir
from .messages.errors import DefinitionError
from .onsite.campaigns import Campaign, CampaignError
from .onsite.catalog import (
    campaign_files,
    check_references,
    load_directory,
    load_file,
    onsite_dir,
)
from .onsite.pushclick import webpush_channels
from .onsite.report import campaign_report
from .store import segments as segment_store
from .store.db import Database
from .yamlfile import Problem

_DIR = click.option("--dir", "directory", type=click.Path(file_okay=False),
                    help="The campaigns' directory (default: [onsite] dir, else onsite/).")


@click.group()
def onsite() -> None:
    """On-site campaigns: check the files, list them, report their experiments."""


def _segments(config: Config) -> set[str] | None:
    """The segments defined in the database (None when there is no database to ask)."""
    if not Path(str(config.db)).exists():
        return None
    database = Database(config.db, synchronous=config.synchronous)
    try:
        return {name for name, _, _ in segment_store.segment_definitions(database.conn())}
    except Exception:  # an old or foreign file: references are then not checked
        return None
    finally:
        database.close()


@onsite.command("validate")
@common_options
@_DIR
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def onsite_validate(db: str | None, config_path: str | None, directory: str | None,
                    files: tuple[str, ...]) -> None:
    """Check campaign files (default: the campaigns' directory): fields, the messages
    they show (files with onsite content) and the segments they name (when the
    database exists). Every problem is printed as FILE:LINE: FIELD: WHAT; the exit
    status is 1 when there is one."""
    config = _config(config_path, db=db)
    paths = [Path(f) for f in files] or campaign_files(Path(directory) if directory
                                                       else onsite_dir(config))
    problems: list[Problem] = []
    campaigns: list[Campaign] = []
    for path in paths:
        try:
            campaigns.append(load_file(path))
        except CampaignError as exc:
            problems.extend(exc.problems)
    try:
        messages = load_messages(messages_dir(config))
    except DefinitionError as exc:
        raise click.ClickException(f"the message files have problems (see `kanal messages "
                                   f"validate`):\n{exc}") from None
    problems += check_references(campaigns, messages=messages, segments=_segments(config))
    if problems:
        raise click.ClickException("\n".join(map(str, problems)))
    click.echo(f"{len(campaigns)} campaign(s) OK")


@onsite.command("list")
@common_options
@_DIR
def onsite_list(db: str | None, config_path: str | None, directory: str | None) -> None:
    """List the campaigns: name, on/off, layout, arms and their messages, pages."""
    config = _config(config_path, db=db)
    try:
        found = load_directory(Path(directory) if directory else onsite_dir(config))
    except CampaignError as exc:
        raise click.ClickException(str(exc)) from None
    for name, c in sorted(found.items()):
        arms = ",".join(f"{a.name}:{a.message}" for a in c.arms)
        if c.holdout:
            arms += f",holdout {c.holdout:g}%"
        where = c.slot if c.layout == "slot" else (c.position or "-")
        pages = ",".join(c.include) or "*"
        click.echo(f"{name}\t{'on' if c.enabled else 'off'}\t{c.layout}\t{where}\t{arms}\t"
                   f"{pages}")


@onsite.command("report")
@common_options
@_DIR
@_SINCE
@_UNTIL
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def onsite_report(db: str | None, config_path: str | None, directory: str | None,
                  since: str | None, until: str | None, as_json: bool) -> None:
    """Each campaign's arms: people first exposed in the window, conversions to its goal,
    shown / clicked / dismissed / submitted, and the lift against the control."""
    config = _config(config_path, db=db)
    since_ms, until_ms = _window(since, until)
    try:
        campaigns = load_directory(Path(directory) if directory else onsite_dir(config))
    except CampaignError:
        campaigns = {}  # the report still covers what happened
    database = _database(config)
    try:
        doc = campaign_report(database.conn(), campaigns, since_ms=since_ms,
                              until_ms=until_ms)
    except (KanalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()
    if as_json:
        click.echo(json.dumps({"since": since_ms, "until": until_ms, "campaigns": doc},
                              indent=2))
        return
    for item in doc:
        click.echo(f"{item['campaign']} (goal {item['goal']}, control {item['control']})")
        click.echo("  arm\tpeople\tconv\trate\tshown\tclicked\tdismissed\tsubmitted\tlift"
                   "\tp")
        for row in item["arms"]:
            lift = "-" if row["lift"] is None else f"{row['lift']:+.1%}"
            p = "-" if row["p_value"] is None else f"{row['p_value']:.3f}"
            click.echo(f"  {row['arm']}\t{row['people']}\t{row['conversions']}\t"
                       f"{row['rate']:.1%}\t{row['shown']}\t{row['clicked']}\t"
                       f"{row['dismissed']}\t{row['submitted']}\t{lift}\t{p}")
            if row["warning"]:
                click.echo(f"    ! {row['warning']}")


@click.group()
def webpush() -> None:
    """Web push: the VAPID key pair the shop's pages subscribe with."""


@webpush.command("keys")
@common_options
@click.option("--show", is_flag=True, help="Print the public key of the configured "
                                           "[channels.webpush] key instead of a new pair.")
def webpush_keys(db: str | None, config_path: str | None, show: bool) -> None:
    """Make a new VAPID key pair (P-256), or show the configured one's public key.

    Keep the private key secret: put it in an environment variable and name it in
    kanal.toml as vapid_private_key = { env = "KANAL_VAPID_PRIVATE_KEY" }. Changing
    it later ends every subscription made with the old one."""
    if show:
        config = _config(config_path, db=db)
        names = sorted(webpush_channels(config))
        if not names:
            raise click.ClickException("no [channels.*] table of type webpush in the config")
        for name in names:
            table = config.section("channels")[name]
            try:
                key = resolve_secret(table.get("vapid_private_key"))
                public = public_key_b64(load_vapid(str(key)))
            except (KanalError, ValueError) as exc:
                raise click.ClickException(f"[channels.{name}]: {exc}") from None
            click.echo(f"{name}: public key {public}")
        return
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    private = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    public = public_key_b64(load_vapid(private))
    click.echo("Put the private key in an environment variable (never in kanal.toml):")
    click.echo(f"  export KANAL_VAPID_PRIVATE_KEY={private}")
    click.echo("and in kanal.toml:")
    click.echo('  [channels.webpush]\n  vapid_private_key = { env = "KANAL_VAPID_PRIVATE_KEY" }')
    click.echo('  subject = "mailto:you@shop.example"')
    click.echo(f"public key (the pages get it from Kanal): {public}")
