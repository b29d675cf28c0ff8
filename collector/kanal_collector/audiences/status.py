"""What `kanal audiences list|status`, the admin API and the dashboard show.

Status of an audience:
    ok            its last round finished
    syncing       a round is under way (batches left)
    failing       its last attempt failed; `lastError` says why, `retryAt` when it goes on
    never synced  no round yet
    disabled      `enabled = false` in kanal.toml
    not configured  rows of an audience no longer in kanal.toml (nothing is sent for it)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..store import audience_syncs as syncs
from ..store import audiences as store
from ..store.connection import Connection
from ..store.db import transaction
from .settings import AudienceSettings


def when(ms: int | None) -> str:
    """A time (epoch ms) as `2026-03-01 09:00:00Z`; `-` for none."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _label(settings: AudienceSettings | None, state: Mapping[str, Any]) -> str:
    if settings is None:
        return "not configured"
    if not settings.enabled:
        return "disabled"
    if state.get("failures"):
        return "failing"
    if state.get("run_id") is not None:
        return "syncing"
    if state.get("synced_at") is None:
        return "never synced"
    return "ok"


def audience_status(conn: Connection, name: str,
                    settings: AudienceSettings | None, *, runs: int = 10) -> dict[str, Any]:
    """One audience: its settings, status, member counts, schedule, errors, rounds."""
    state = syncs.sync_state(conn, name)
    counts = store.counts(conn, name)
    skipped = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("skipped:")}
    base = settings.as_json() if settings is not None else {"name": name}
    return {
        **base,
        "status": _label(settings, state),
        "members": counts["added"],
        "adding": counts["adding"],
        "removing": counts["removing"],
        "rejected": counts["rejected"],
        "held": counts["held"],
        "skipped": skipped,
        "lastSync": state["synced_at"],
        "nextSync": state["next_at"],
        "retryAt": state["retry_at"],
        "failures": state["failures"],
        "lastError": state["last_error"],
        "errorAt": state["error_at"],
        "requestedAt": state["requested_at"],
        "runs": [{"id": r["id"], "reason": r["reason"], "startedAt": r["started_at"],
                  "finishedAt": r["finished_at"], "added": r["added"],
                  "removed": r["removed"], "rejected": r["rejected"],
                  "batches": r["batches"], "skippedConsent": r["skipped_consent"],
                  "skippedIdentifiers": r["skipped_identifiers"], "note": r["note"],
                  "error": r["error"]} for r in syncs.recent_runs(conn, name, runs)],
        "rowErrors": store.errors(conn, name),
    }


def all_statuses(conn: Connection, audiences: Mapping[str, AudienceSettings],
                 *, runs: int = 1) -> list[dict[str, Any]]:
    """Every configured audience, and those with rows that no longer are, by name."""
    names = sorted(set(audiences) | set(store.audiences_with_rows(conn)))
    return [audience_status(conn, n, audiences.get(n), runs=runs) for n in names]


def request_sync(conn: Connection, name: str, now: int) -> None:
    """Ask the worker of `kanal serve` to sync the audience at once (also when a failed
    round waits: the operator may have fixed what failed)."""
    with transaction(conn):
        syncs.update_sync(conn, name, requested_at=now, retry_at=None)
