"""`kanal audiences list|status|sync`: ads audiences and their syncs."""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

import click

from .audiences.destination import ADD, BatchResult
from .audiences.errors import AudienceError
from .audiences.plugins import build_destination, check_audiences
from .audiences.settings import AudienceSettings
from .audiences.status import all_statuses, audience_status
from .audiences.sync import AudienceSync, dry_run
from .cli_common import _now_ms, _when, common_options, current_config, with_db
from .clock import SystemClock
from .store import audience_syncs as syncs
from .store import audiences as store
from .store.db import Database
from .store.profiles import widen_cache

MAX_WAIT = 300.0
"""The longest `kanal audiences sync` waits for a platform before leaving the rest to
`kanal serve` (seconds)."""


@click.group()
def audiences() -> None:
    """Ads audiences: segments and journey steps kept in step with ad platforms."""


def _settings() -> dict[str, AudienceSettings]:
    return check_audiences(current_config())


def _one(name: str) -> AudienceSettings:
    found = _settings()
    if name not in found:
        raise click.ClickException(
            f"no audience named {name!r} (audiences: {', '.join(sorted(found)) or 'none'}; "
            "add [audiences.NAME] to kanal.toml)")
    return found[name]


def _pending(s: dict[str, Any]) -> str:
    return f"+{s['adding']:,}/-{s['removing']:,}"


@audiences.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per audience.")
@with_db
def audiences_list(db: Database, as_json: bool) -> None:
    """Every audience: destination, segment, status, members, what waits, last sync."""
    statuses = all_statuses(db.conn(), _settings())
    if not statuses:
        click.echo("no audiences: add [audiences.NAME] tables to kanal.toml (docs/audiences.md, "
                   "Ads: audiences)")
    for s in statuses:
        if as_json:
            click.echo(json.dumps(s, sort_keys=True))
            continue
        error = f"\t{s['lastError']}" if s["lastError"] else ""
        click.echo(f"{s['name']}\t{s.get('destination', '-')}\t"
                   f"segment {s.get('segment') or '-'}\t{s['status']}\t"
                   f"{s['members']:,} members\twaiting {_pending(s)}\t"
                   f"{s['rejected']:,} refused\tlast sync {_when(s['lastSync'])}{error}")


@audiences.command("status")
@common_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@with_db
def audiences_status(db: Database, name: str, as_json: bool) -> None:
    """One audience in detail: members, what waits, schedule, errors, recent rounds."""
    found = _settings()
    conn = db.conn()
    if name not in found and name not in store.audiences_with_rows(conn):
        _one(name)
    s = audience_status(conn, name, found.get(name))
    if as_json:
        click.echo(json.dumps(s, indent=2, sort_keys=True))
        return
    click.echo(f"{name}: {s['status']}" + (f" ({s['description']})"
                                           if s.get("description") else ""))
    if "destination" in s:
        click.echo(f"  destination {s['destination']}; segment {s['segment'] or '-'}; "
                   f"every {s['everySeconds']} s; identifiers "
                   f"{', '.join(s['identifiers'])}")
    click.echo(f"  members {s['members']:,}; waiting to be added {s['adding']:,}, removed "
               f"{s['removing']:,}; refused {s['rejected']:,}; held by journeys "
               f"{s['held']:,}")
    for reason, n in sorted(s["skipped"].items()):
        click.echo(f"  not sent ({reason}): {n:,}")
    click.echo(f"  last sync {_when(s['lastSync'])}; next {_when(s['nextSync'])}")
    if s["lastError"]:
        click.echo(f"  last error ({_when(s['errorAt'])}, {s['failures']} in a row): "
                   f"{s['lastError']}; trying again {_when(s['retryAt'])}")
    for row in s["rowErrors"]:
        click.echo(f"  {row['state']} row {row['rowKey'][:12]}…: {row['error']}")
    for run in s["runs"]:
        click.echo(f"  round {run['id']} ({run['reason']}) {_when(run['startedAt'])}: "
                   f"+{run['added']:,} -{run['removed']:,} refused {run['rejected']:,}, "
                   f"{run['batches']} batches" + (f"; {run['note']}" if run["note"] else "")
                   + (f"; error: {run['error']}" if run["error"] else ""))


def _progress(action: str, rows: int, result: BatchResult) -> None:
    done = "added" if action == ADD else "removed"
    refused = f" ({len(result.rejected)} refused)" if result.rejected else ""
    click.echo(f"  {done} {rows - len(result.rejected):,}{refused}"
               + (f"; {result.note}" if result.note else ""))


@audiences.command("sync")
@common_options
@click.argument("name")
@click.option("--dry-run", "dry_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write what would be sent (one JSON line per batch, hashed identifiers "
                   "only) to this file ('-': standard output); send nothing, change "
                   "nothing.")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
              help="Times to try again after a timeout, a 5xx or a rate limit (waiting "
                   "as told, at most 5 minutes).")
@with_db
def audiences_sync(db: Database, name: str, dry_path: str | None, retries: int) -> None:
    """Sync audience NAME now: send who entered and who left (everyone, the first time).

    Exits 1 when the destination refuses, or still fails after the retries; what is
    left stays waiting, and `kanal serve` goes on with it.
    """
    settings = _one(name)
    destination = build_destination(settings)
    conn = db.conn()
    widen_cache(conn, 64)  # a round reads profiles and rows all over the file
    try:
        if dry_path is not None:
            try:
                out: Any = (nullcontext(sys.stdout) if dry_path == "-"
                            else Path(dry_path).open("w", encoding="utf-8"))
            except OSError as exc:
                raise click.ClickException(f"can't write {dry_path}: "
                                           f"{exc.strerror or exc}") from None
            with out as f:
                adds, removes = dry_run(conn, settings, destination, f)
            where = "" if dry_path == "-" else f"; written to {dry_path}"
            click.echo(f"{name}: would add {adds:,} and remove {removes:,} row(s){where} "
                       "(nothing was sent)", err=dry_path == "-")
            return
        if not settings.enabled:
            raise click.ClickException(f"audience {name!r} is disabled (enabled = false in "
                                       "kanal.toml)")
        _sync(conn, name, AudienceSync(conn, settings, destination, SystemClock(),
                                       progress=_progress), retries)
    finally:
        destination.close()


def _sync(conn: Any, name: str, sync: AudienceSync, retries: int) -> None:
    click.echo(f"{name}: syncing to {sync.destination.name}…")
    for attempt in range(retries + 1):
        try:
            outcome = sync.step("manual")
        except AudienceError as exc:
            raise click.ClickException(str(exc)) from None
        if outcome.state == "done":
            run = syncs.run_row(conn, outcome.run_id) if outcome.run_id else None
            if run is not None:
                _summary(name, run, sys.stdout)
            return
        wait = max(0.0, ((outcome.retry_at or 0) - _now_ms()) / 1000)
        if outcome.state == "failed" or attempt == retries or wait > MAX_WAIT:
            raise click.ClickException(
                f"{name}: {outcome.error}; what is left waits, and `kanal serve` tries "
                f"again at {_when(outcome.retry_at)}")
        click.echo(f"  {outcome.error}; trying again in {wait:.0f} s")
        time.sleep(wait)


def _summary(name: str, run: dict[str, Any], out: TextIO) -> None:
    skipped = [f"{run['skipped_consent']:,} without advertising consent"
               if run["skipped_consent"] else "",
               f"{run['skipped_identifiers']:,} without an email or phone"
               if run["skipped_identifiers"] else ""]
    text = "; ".join(s for s in skipped if s)
    click.echo(f"{name}: done: {run['added']:,} added, {run['removed']:,} removed, "
               f"{run['rejected']:,} refused in {run['batches']} batch(es)"
               + (f"; not sent: {text}" if text else "")
               + (f"; {run['note']}" if run["note"] else ""), file=out)
