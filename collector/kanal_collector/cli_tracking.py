"""`kanal tracking …`: signing keys of tracking links, and a person's preference link."""

from __future__ import annotations

import hashlib

import click

from .cli_common import _config, _database, _now_ms, _when, common_options
from .errors import KanalError
from .profiles.views import lookup
from .store import tracking as store
from .tracking import keys as tracking_keys
from .tracking.email import preferences_url
from .tracking.settings import TrackingSettings


def _fingerprint(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:12]


@click.group()
def tracking() -> None:
    """Email tracking links: signing keys and preference pages."""


@tracking.command("rotate-key")
@common_options
@click.option("--keep", type=click.IntRange(1), default=None,
              help="Keep only this many keys in all, the new one included (default: all; "
                   "links in emails signed by a dropped key stop working).")
def rotate_key(db: str | None, config_path: str | None, keep: int | None) -> None:
    """Make a new random key sign tracking links; older kept keys still verify."""
    config = _config(config_path, db=db)
    database = _database(config)
    try:
        settings = TrackingSettings.from_config(config)
        keys = tracking_keys.rotate(database.conn(), _now_ms(), keep)
    except (KanalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()
    if settings.keys:
        click.echo("Note: [tracking] keys in the config are in force; the stored keys "
                   "are used only without them.")
    click.echo(f"New signing key {_fingerprint(keys[0].secret)}; {len(keys)} key(s) verify. "
               "A running `kanal serve` picks it up within seconds.")


@tracking.command("keys")
@common_options
def list_keys(db: str | None, config_path: str | None) -> None:
    """List the signing keys by fingerprint, newest (the one that signs) first."""
    config = _config(config_path, db=db)
    database = _database(config)
    try:
        settings = TrackingSettings.from_config(config)
        stored = store.signing_keys(database.conn())
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()
    if settings.keys:
        for i, secret in enumerate(settings.keys):
            click.echo(f"{_fingerprint(secret)}\tconfig\t{'signs' if i == 0 else 'verifies'}")
        return
    if not stored:
        click.echo("No keys yet: the first send creates one.")
    for i, k in enumerate(stored):
        click.echo(f"{_fingerprint(k.secret)}\tcreated {_when(k.created_at)}\t"
                   f"{'signs' if i == 0 else 'verifies'}")


@tracking.command("preferences-url")
@common_options
@click.argument("user")
@click.option("--base-url", help="Tracking host (default [tracking] base_url).")
def preferences_link(db: str | None, config_path: str | None, user: str,
                     base_url: str | None) -> None:
    """Print the preference page link of USER (a userId, email, phone or anonymousId)."""
    config = _config(config_path, db=db)
    database = _database(config)
    try:
        settings = TrackingSettings.from_config(config)
        conn = database.conn()
        pid = lookup(conn, user, None)
        if pid is None:
            raise click.ClickException(f"no profile has the identity {user!r}")
        key = tracking_keys.load_keys(conn, settings.keys, _now_ms())[0]
        click.echo(preferences_url((base_url or settings.send_base_url(config)).rstrip("/"),
                                   key, pid))
    except KanalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()
