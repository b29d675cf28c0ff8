"""`kanal dashboard locks|unlock`: failed dashboard sign-ins, and clearing them."""

from __future__ import annotations

import click

from .cli_common import _when, common_options, current_config, with_db
from .clock import SystemClock
from .dashboard.auth import LoginLimiter
from .store import dashboard as store
from .store.db import Database
from .store.keys import PREFIX_LENGTH


@click.group()
def dashboard() -> None:
    """The dashboard's sign-in: who is waiting after failed sign-ins, and unlocking."""


@dashboard.command("locks")
@common_options
@with_db
def dashboard_locks(db: Database) -> None:
    """Failed sign-ins kept, per client address and admin key prefix, and whether that
    pair waits now."""
    limiter = LoginLimiter.from_config(db, SystemClock(), current_config())
    rows = store.failure_buckets(db.conn(), 0)
    for address, prefix, failures, last in rows:
        wait = limiter.retry_after(address, prefix)
        state = f"waits {wait} s more" if wait else "may sign in"
        click.echo(f"{address}\t{prefix}…\t{failures} failed\tlast {_when(last)}\t{state}")
    if not rows:
        click.echo("No failed sign-ins kept.")


@dashboard.command("unlock")
@common_options
@click.option("--address", help="Only this client address.")
@click.option("--key", "prefix", help="Only this admin key (the key or its prefix, as "
                                      "`kanal keys list` shows it).")
@with_db
def dashboard_unlock(db: Database, address: str | None, prefix: str | None) -> None:
    """Forget failed dashboard sign-ins (all, or of one address and/or key) so that
    nobody waits any more."""
    key = prefix.rstrip("…")[:PREFIX_LENGTH] if prefix else None
    cleared = store.clear_failures(db.conn(), address=address, prefix=key)
    click.echo(f"Cleared {cleared} failed sign-in(s).")
