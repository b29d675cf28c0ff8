"""`kanal events prune --before DATE`: retention, on either engine (store/retention.py)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import click

from .cli_common import _now_ms, _when, common_options, with_db
from .store.connection import DB_ERRORS
from .store.db import Database
from .store.retention import Progress, PruneRefused, prune


def parse_before(text: str) -> int:
    """--before as epoch ms: a day (UTC midnight) or a moment with its UTC offset."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.ClickException(
            f"--before: a day (2025-01-31, from midnight UTC) or a moment with its UTC "
            f"offset (2025-01-31T12:00:00+01:00), not {text!r}")
    return int(moment.timestamp() * 1000)


@click.command("prune")
@common_options
@click.option("--before", "before", required=True, metavar="DATE",
              help="Delete the events received before this day (YYYY-MM-DD, from midnight "
                   "UTC) or moment (ISO 8601 with its offset).")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@with_db
def prune_command(db: Database, before: str, yes: bool) -> None:
    """Delete the events received before DATE from the log, for good.

    What the processor made of them stays: profiles, segments, journeys, orders and
    reports. Only events it has applied can go. On PostgreSQL the months wholly before
    DATE are dropped at once; elsewhere events are deleted in chunks, with progress.
    """
    before_ms = parse_before(before)
    when = _when(before_ms)
    if not yes:
        click.confirm(f"Delete every event received before {when} from the log? "
                      "This can't be undone", abort=True)
    conn = db.connect()
    try:
        done = prune(conn, before_ms, now_ms=_now_ms(), progress=_progress())
    except PruneRefused as exc:
        raise click.ClickException(f"nothing pruned: {exc}") from None
    except DB_ERRORS as exc:
        raise click.ClickException(f"the prune stopped ({exc}); run it again to "
                                   "finish") from None
    finally:
        conn.close()
    months = (f", {len(done.partitions)} month(s) dropped whole "
              f"({', '.join(done.partitions)})" if done.partitions else "")
    click.echo(f"Pruned {done.events} events received before {when}{months}; "
               f"{done.timeline_rows} timeline rows and {done.failed_events} refused "
               "events went with them.")


def _progress() -> Progress:
    last = [0.0]

    def show(what: str, events: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            click.echo(f"  {what}: {events} events so far", err=True)

    return show
