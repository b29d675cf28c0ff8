"""`kanal suppressions …`, `kanal email check DOMAIN`, `kanal bounces serve` and
`kanal report deliverability`."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from .cli_common import _config, _database, _now_ms, _when, common_options, with_db
from .cli_report import _FORMAT, _SINCE, _UNTIL, Row, _emit, _opened, _window, rate, report
from .clock import SystemClock
from .deliverability import suppression
from .deliverability.settings import Settings, parse_listen
from .errors import KanalError
from .reports import views
from .reports.window import WindowError
from .store import deliverability as store
from .store.db import Database
from .tracking.keys import KeyCache
from .tracking.settings import TrackingSettings

# -- the suppression list ------------------------------------------------------------------


@click.group()
def suppressions() -> None:
    """The email suppression list: addresses Kanal never emails (bounces, complaints,
    added by hand)."""


@suppressions.command("list")
@common_options
@click.option("--reason", help="Only entries with this reason (hard_bounce, complaint, …).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@with_db
def suppressions_list(db: Database, reason: str | None, limit: int, as_json: bool) -> None:
    """Addresses on the list, in address order, with the count per reason first."""
    conn = db.conn()
    rows = store.suppressions(conn, limit=limit, reason=reason)
    if as_json:
        for s in rows:
            click.echo(json.dumps(s.as_json(), ensure_ascii=False))
        return
    counts = store.count_suppressions(conn)
    click.echo("  ".join(f"{r}: {n}" for r, n in counts.items()) or "The list is empty.")
    for s in rows:
        click.echo(f"{s.address}\t{s.reason}\t{s.source}\t{_when(s.updated_at)}\t"
                   f"{s.detail or ''}")


@suppressions.command("add")
@common_options
@click.argument("address")
@click.option("--reason", default="manual", show_default=True,
              help="A word: manual, hard_bounce, complaint, …")
@click.option("--detail", help="A note (why).")
@with_db
def suppressions_add(db: Database, address: str, reason: str, detail: str | None) -> None:
    """Put ADDRESS on the list: no email goes to it any more, transactional included."""
    new = suppression.add(db.conn(), address, reason=reason, detail=detail, now_ms=_now_ms())
    clean = suppression.clean_address(address)
    click.echo(f"{'Added' if new else 'Updated'} {clean} ({suppression.clean_reason(reason)})")


@suppressions.command("remove")
@common_options
@click.argument("address")
@with_db
def suppressions_remove(db: Database, address: str) -> None:
    """Take ADDRESS off the list (it may be emailed again)."""
    if not suppression.remove(db.conn(), address):
        raise click.ClickException(f"{address} is not on the suppression list")
    click.echo(f"Removed {address.strip().lower()}")


@suppressions.command("import")
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid lines and list the others (default: import nothing "
                   "when any line is bad).")
@with_db
def suppressions_import(db: Database, file: Path, skip_invalid: bool) -> None:
    """Add the addresses of a CSV file (columns address or email; reason, detail)."""
    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows, problems = suppression.read_csv(handle, str(file))
    for problem in problems:
        click.echo(problem, err=True)
    if problems and not skip_invalid:
        raise click.ClickException(f"{len(problems)} bad line(s); nothing was imported "
                                   f"(fix them, or use --skip-invalid)")
    added, kept = suppression.import_rows(db.conn(), rows, now_ms=_now_ms())
    click.echo(f"Imported {added} address(es); {kept} already on the list"
               + (f"; skipped {len(problems)} bad line(s)" if problems else ""))


@suppressions.command("export")
@common_options
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reason", help="Only entries with this reason.")
@with_db
def suppressions_export(db: Database, file: Path | None, reason: str | None) -> None:
    """Write the list as CSV to FILE (default: standard output)."""
    lines = suppression.export_lines(db.conn(), reason=reason)
    if file is None:
        for line in lines:
            click.echo(line, nl=False)
        return
    count = -1
    with file.open("w", encoding="utf-8", newline="") as out:
        for line in lines:
            out.write(line)
            count += 1
    click.echo(f"Wrote {count} address(es) to {file}")


# -- DNS records ----------------------------------------------------------------------------


@click.group()
def email() -> None:
    """Email sending hygiene."""


@email.command("check")
@common_options
@click.argument("domain")
@click.option("--json", "as_json", is_flag=True, help="The findings as JSON.")
def email_check(db: str | None, config_path: str | None, domain: str, as_json: bool) -> None:
    """Print the SPF, DKIM and DMARC records DOMAIN needs and what is missing; exit 1
    when a record is missing or wrong."""
    from .deliverability import dnscheck  # DNS and DKIM: only this command needs them

    config = _config(config_path, db=db)
    try:
        findings = dnscheck.check_domain(domain, config, dnscheck.DnsPythonResolver())
    except (KanalError, ValueError, dnscheck.DnsError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"domain": domain, "findings": [f.as_json() for f in findings],
                               **dnscheck.summary(findings)}, indent=2))
    else:
        for line in dnscheck.report_lines(findings):
            click.echo(line)
    counts = dnscheck.summary(findings)
    if counts["problems"]:
        raise click.ClickException(f"{counts['problems']} record(s) missing or wrong")


# -- the bounce endpoint ------------------------------------------------------------------------


@click.group()
def bounces() -> None:
    """The endpoint that receives bounces (DSNs) sent to the VERP addresses."""


@bounces.command("serve")
@common_options
@click.option("--listen", help="host:port (default [deliverability.bounces] listen).")
def bounces_serve(db: str | None, config_path: str | None, listen: str | None) -> None:
    """Receive bounces over SMTP/LMTP until Ctrl-C or SIGTERM (without `kanal serve`)."""
    from .deliverability.receiver import start_receiver, stop_receiver  # aiosmtpd

    config = _config(config_path, db=db)
    database = _database(config)
    try:
        settings = Settings.from_config(config)
        host, port = parse_listen(listen, "--listen") if listen else (None, None)
        keys = KeyCache(TrackingSettings.from_config(config).keys)
        server = start_receiver(database, SystemClock(), settings, keys, host=host, port=port)
    except (KanalError, ValueError) as exc:
        database.close()
        raise click.ClickException(str(exc)) from None
    click.echo(f"Receiving bounces on {server.hostname}:{server.port} (Ctrl-C stops)")
    sys.stdout.flush()
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_receiver(server)
        database.close()
        click.echo("Stopped.")


# -- the report ---------------------------------------------------------------------------------


@click.command("deliverability")
@common_options
@_SINCE
@_UNTIL
@_FORMAT
@click.option("--by", "by", type=click.Choice(["day", "channel", "journey", "domain"]),
              default="day", show_default=True, help="One row per day, channel, journey "
                                                     "or recipient domain.")
def report_deliverability(db: str | None, config_path: str | None, since: str | None,
                          until: str | None, fmt: str, by: str) -> None:
    """Email sent, bounces and complaints with their rates, and the published limits."""
    since_ms, until_ms = _window(since, until)
    with _opened(db, config_path) as (_, database):
        try:
            doc = views.deliverability_view(database.conn(), since_ms=since_ms,
                                            until_ms=until_ms)
        except WindowError as exc:
            raise click.BadParameter(str(exc).removeprefix(f"{exc.param}: "),
                                     param_hint=f"'--{exc.param}'") from None
    items: list[dict[str, Any]] = doc["days"] if by == "day" else doc[f"by_{by}"]
    label = "day" if by == "day" else "key"
    headers = [by, "sent", "hard", "soft", "complaints", "bounce_rate", "complaint_rate"]
    rows: list[Row] = [[r[label], r["sent"], r["hard"], r["soft"], r["complaints"],
                        rate(r["bounce_rate"]), rate(r["complaint_rate"])] for r in items]
    totals = doc["totals"]

    def table() -> str:
        from .cli_report import render_table

        head = (f"sent {totals['sent']}  bounces {totals['bounces']} "
                f"({rate(totals['bounce_rate'])})  complaints {totals['complaints']} "
                f"({rate(totals['complaint_rate'])})")
        limits = "\n".join(f"  limit: {t['label']} ({t['source']})"
                           for t in doc["thresholds"])
        return head + "\n" + limits + "\n\n" + render_table(headers, rows)

    _emit(fmt, doc, headers, rows, table=table)


report.add_command(report_deliverability)
