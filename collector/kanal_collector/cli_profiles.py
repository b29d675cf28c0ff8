"""`kanal profiles …`, `kanal segments …`, `kanal import FILE`, `kanal forget USER`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import (
    _now_ms,
    _when,
    common_options,
    country_setting,
    current_config,
    with_db,
)
from .clock import SystemClock
from .errors import KanalError
from .onsite.step import OnsiteStep
from .predict.views import score_lines, scores_json
from .products import ProductSettings, ProductsStep
from .profiles import importer
from .profiles.privacy import forget as forget_person
from .profiles.rebuild import LogPruned, RebuildBusy, rebuild
from .profiles.segments import Segment, SegmentError, load_segments_file
from .profiles.step import sweep
from .profiles.views import export_json, lookup, profile_json, timeline_json
from .reports.attribution import AttributionSettings
from .reports.credits import AttributionStep
from .store import identities as identity_store
from .store import profiles as store
from .store import segments as segment_store
from .store import timeline as timeline_store
from .store.contacts import contact_fixes
from .store.db import Database, transaction
from .store.keys import source_id as find_source

_KIND = click.Choice(identity_store.KINDS)


def _find(db: Database, user: str, kind: str | None) -> int:
    pid = lookup(db.conn(), user, kind)
    if pid is None:
        raise click.ClickException(f"no profile has the identity {user!r}")
    return pid


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


@click.group()
def profiles() -> None:
    """One profile per person: look one up, export it, rebuild them all from the log."""


@profiles.command("show")
@common_options
@click.argument("user")
@click.option("--kind", type=_KIND, help="Only look USER up as this kind of identity.")
@click.option("--limit", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="Timeline events to show.")
@click.option("--json", "as_json", is_flag=True, help="The admin API's JSON.")
@with_db
def profiles_show(db: Database, user: str, kind: str | None, limit: int,
                  as_json: bool) -> None:
    """Show the profile of USER (a userId, email, phone, anonymousId or profile id)."""
    conn = db.conn()
    pid = _find(db, user, kind)
    profile = profile_json(conn, pid)
    assert profile is not None
    profile["scores"] = scores_json(conn, pid)
    events = timeline_store.timeline(conn, pid, limit=limit)
    if as_json:
        profile["timeline"] = [timeline_json(e) for e in events]
        click.echo(_dump(profile))
        return
    c = profile["computed"]
    click.echo(f"Profile {pid}")
    for ident in profile["identities"]:
        click.echo(f"  {ident['kind']:<13} {ident['value']}")
    click.echo("Traits:")
    for name, value in profile["traits"].items():
        click.echo(f"  {name}: {json.dumps(value, ensure_ascii=False)}")
    for name, value in profile["claimed"].items():
        click.echo(f"  {name} (unverified): {json.dumps(value, ensure_ascii=False)}")
    click.echo("Computed:")
    click.echo(f"  first seen {_when(c['firstSeen'])}, last seen {_when(c['lastSeen'])}")
    click.echo(f"  orders {c['orders']}, revenue {c['revenue']}, average order "
               f"{c['averageOrderValue']}, last order {_when(c['lastOrderAt'])}")
    click.echo(f"  origins {', '.join(c['origins']) or '-'}; preferred channel "
               f"{c['preferredChannel'] or '-'}")
    click.echo(f"  language {c['language'] or '-'}, timezone {c['timezone'] or '-'}, "
               f"country {c['country'] or '-'}")
    for channel, sub in c["subscriptions"].items():
        topics = ", ".join(f"{t}={v}" for t, v in sub["topics"].items())
        click.echo(f"  {channel}: subscribed={sub['subscribed']} {topics}".rstrip())
    if c["consent"]:
        click.echo("  consent " + ", ".join(f"{k}={v}" for k, v in c["consent"].items()))
    if profile["segments"]:
        click.echo("Segments: " + ", ".join(s["name"] for s in profile["segments"]))
    if profile["scores"] is not None:
        click.echo("Scores, " + "\n".join(score_lines(profile["scores"])))
    click.echo(f"Timeline (newest {len(events)}):")
    for e in events:
        who = e.user_id or f"anon:{e.anonymous_id}"
        click.echo(f"  {_when(e.timestamp)}\t{e.origin}\t{e.type}\t{e.event or ''}\t{who}")


@profiles.command("export")
@common_options
@click.argument("user")
@click.option("--kind", type=_KIND, help="Only look USER up as this kind of identity.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@with_db
def profiles_export(db: Database, user: str, kind: str | None, output: str | None) -> None:
    """Write everything held about USER as JSON (profile, identities, events, …)."""
    pid = _find(db, user, kind)
    text = _dump(export_json(db.conn(), pid))
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        click.echo(f"Wrote profile {pid} to {output}.", err=True)
    else:
        click.echo(text)


@profiles.command("contact-fixes")
@common_options
@click.option("--outcome", type=click.Choice(["normalised", "invalid", "conflict"]),
              help="Only fixes with this outcome.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@with_db
def profiles_contact_fixes(db: Database, outcome: str | None, as_json: bool) -> None:
    """What the upgrade to normalised emails and phones changed in existing identities.

    normalised: the identity holds the normalised value now; invalid: not a valid
    address or number, so no longer an identity (the trait stays); conflict: the
    normalised value is another profile's identity (`kanal profiles rebuild` merges the
    two by the merge rules).
    """
    fixes = contact_fixes(db.conn(), outcome)
    for fix in fixes:
        if as_json:
            click.echo(json.dumps(fix, ensure_ascii=False))
            continue
        detail = {"normalised": f"→ {fix['normalised']}",
                  "invalid": f"removed: {fix['detail']}",
                  "conflict": f"→ {fix['normalised']}, held by profile "
                              f"{fix['other_profile']}"}[fix["outcome"]]
        click.echo(f"{fix['outcome']}\tprofile {fix['profile_id']}\t{fix['kind']} "
                   f"{fix['value']!r} {detail}")
    if not as_json:
        click.echo(f"{len(fixes)} fix(es).", err=True)


@profiles.command("rebuild")
@common_options
@with_db
def profiles_rebuild(db: Database) -> None:
    """Recompute every profile, identity and segment (and what people did with
    products, and who saw which on-site campaign) from the event log, and the predictive
    scores with the latest fit's parameters and date (no refit)."""
    from .predict.fit import hold_predict_lease, rescore

    config = current_config()
    try:
        products = ProductsStep(ProductSettings.from_config(config))
        attribution = AttributionStep(AttributionSettings.from_config(config))
    except (ValueError, KanalError) as exc:
        raise click.ClickException(str(exc)) from None
    conn = db.conn()
    clock = SystemClock()
    scored = 0

    def scores(c: Any) -> None:
        nonlocal scored
        scored = rescore(c)

    try:
        # No fit may write scores for the old profile ids while they are rebuilt.
        with hold_predict_lease(conn, clock, "rebuild") as renew:
            done = rebuild(conn, clock, progress=lambda n: renew(),
                           also=[products, OnsiteStep(), attribution],
                           default_country=country_setting(config), before_segments=scores)
    except (RebuildBusy, LogPruned, KanalError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Rebuilt {store.count_profiles(conn)} profiles from {done} events; "
               f"{scored} people's predictive scores recomputed.")


@click.command("import")
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", default="default", show_default=True,
              help="The source the rows are filed under.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
              help="Write rejected rows here (JSON lines).")
@click.option("--dry-run", is_flag=True, help="Validate only; store nothing.")
@click.option("--allow-rejects", is_flag=True,
              help="Exit 0 even when rows were rejected (the valid rows are stored either "
                   "way).")
@click.option("--trigger", is_flag=True,
              help="Let the rows start journeys, as if they had just happened (without "
                   "it, imported rows are history and start none).")
@with_db
def import_(db: Database, file: str, source: str, report_path: str | None,
            dry_run: bool, allow_rejects: bool, trigger: bool) -> None:
    """Import offline purchases or a customer list (CSV or JSON lines), origin `store`.

    Columns userId, anonymousId, event, type, timestamp and messageId are message
    fields; properties.X, traits.X and context.X go where they say; any other column is
    a trait (rows without an event) or a property (rows with one). Re-running a file
    stores nothing twice. The exit status is 1 when any row was rejected (the valid
    rows are stored all the same), unless --allow-rejects.

    Imported rows are history: they update profiles and segments but start no journey,
    unless --trigger is given (then each new row may start journeys as if it had just
    happened, whatever its timestamp).
    """
    conn = db.conn()
    sid = find_source(conn, source)
    if sid is None:
        raise click.ClickException(f"no source named {source!r} (`kanal sources list`)")
    path = Path(file)
    total = importer.count_rows(path)
    with click.progressbar(length=total, label=f"Importing {path.name}",
                           file=sys.stderr) as bar:
        report = importer.import_file(conn, path, source_id=sid, received_ms=_now_ms(),
                                      dry_run=dry_run, progress=bar.update,
                                      default_country=country_setting(current_config()),
                                      trigger=trigger)
    verb = "Checked" if dry_run else "Imported"
    click.echo(f"{verb} {report.rows} rows: {report.stored} stored, "
               f"{report.duplicates} already there, {len(report.rejected)} rejected.")
    for rejected in report.rejected[:20]:
        click.echo(f"  line {rejected.line}: {rejected.reason}")
    if len(report.rejected) > 20:
        click.echo(f"  … and {len(report.rejected) - 20} more")
    if report.invalid:
        click.echo(f"{len(report.invalid)} invalid email or phone value(s), imported as "
                   "invalid traits (never used to identify or reach anyone):")
        for bad in report.invalid[:20]:
            click.echo(f"  line {bad.line}: {bad.field} {bad.value!r}: {bad.reason}")
        if len(report.invalid) > 20:
            click.echo(f"  … and {len(report.invalid) - 20} more")
    if report_path:
        with open(report_path, "w", encoding="utf-8") as f:
            for r in report.rejected:
                f.write(json.dumps({"line": r.line, "reason": r.reason, "row": r.row},
                                   ensure_ascii=False) + "\n")
            for bad in report.invalid:
                f.write(json.dumps({"line": bad.line, "invalid": bad.field,
                                    "value": bad.value, "reason": bad.reason},
                                   ensure_ascii=False) + "\n")
    if report.rejected and not allow_rejects:
        raise click.ClickException(
            f"{len(report.rejected)} row(s) rejected"
            + ("" if dry_run else "; the other rows were stored")
            + (f" (all in {report_path})" if report_path else " (--report FILE lists them all)")
            + "; --allow-rejects exits 0 when rejects are expected")


@click.command()
@common_options
@click.argument("user")
@click.option("--kind", type=_KIND, help="Only look USER up as this kind of identity.")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@with_db
def forget(db: Database, user: str, kind: str | None, yes: bool) -> None:
    """Delete USER's events and profile; keep a suppression record so later events
    for any of their identities are not kept."""
    if not yes:
        click.confirm(f"Delete everything about {user!r}? This can't be undone", abort=True)
    done = forget_person(db.conn(), user, _now_ms(), kind=kind)
    if done.profile_id is None:
        click.echo(f"No profile found; suppressed {user!r} for the future.")
    else:
        click.echo(f"Forgot profile {done.profile_id}: {done.events_deleted} events deleted, "
                   f"{len(done.identities)} identities suppressed.")


@click.group()
def segments() -> None:
    """Segments: declarative groups of people, kept current as events arrive."""


def _segments_file(file: str) -> list[Segment]:
    """The segments of FILE; every problem printed (FILE:LINE: FIELD: WHAT), then exit 1."""
    try:
        return load_segments_file(file)
    except SegmentError as exc:
        for problem in [str(p) for p in exc.problems] or [str(exc)]:
            click.echo(str(problem), err=True)
        count = max(len(exc.problems), 1)
        raise click.ClickException(f"{file}: {count} problem(s)") from None


@segments.command("validate")
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def segments_validate(db: str | None, config_path: str | None, file: str) -> None:
    """Check a segments file (YAML or JSON) without storing it (the database is not read).

    Every problem is printed as FILE:LINE: FIELD: WHAT; the exit status is 1 when there
    is one.
    """
    found = _segments_file(file)
    click.echo(f"{file}: {len(found)} segments OK: " + ", ".join(s.name for s in found))


@segments.command("apply")
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@with_db
def segments_apply(db: Database, file: str) -> None:
    """Make FILE the set of segments; new and changed ones are computed at once (with a
    progress bar on stderr: every profile is tested)."""
    found = _segments_file(file)
    conn = db.conn()
    now = _now_ms()
    with transaction(conn):
        changed, removed = segment_store.put_segment_definitions(
            conn, {s.name: s.definition for s in found}, now)
    todo = [s for s in found if s.name in changed]
    changes = 0
    if todo:
        with click.progressbar(length=store.count_profiles(conn), label="Computing segments",
                               file=sys.stderr) as bar:
            changes = sweep(conn, now, segments=todo, trigger=f"a{now}",
                            only_time_dependent=False, progress=bar.update)
    click.echo(f"{len(found)} segments: {len(changed)} new or changed, {len(removed)} "
               f"removed; {changes} memberships computed.")


@segments.command("list")
@common_options
@with_db
def segments_list(db: Database) -> None:
    """Segments with their member counts."""
    conn = db.conn()
    counts = segment_store.segment_counts(conn)
    for name, version, definition in segment_store.segment_definitions(conn):
        click.echo(f"{name}\tv{version}\t{counts.get(name, 0)} members\t"
                   f"{definition.get('description', '')}")


@segments.command("members")
@common_options
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@with_db
def segments_members(db: Database, name: str, limit: int) -> None:
    """Profiles in segment NAME (profile id, first identity, since when)."""
    conn = db.conn()
    for pid, entered in segment_store.segment_members(conn, name, limit=limit):
        idents = identity_store.profile_identities(conn, pid)
        label = next((v for k, v in idents if k in ("user_id", "email")),
                     idents[0][1] if idents else "")
        click.echo(f"{pid}\t{label}\tsince {_when(entered)}")
