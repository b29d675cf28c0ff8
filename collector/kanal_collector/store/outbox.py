"""The outbox: one row per message to send, and every state change of it.

States (see "Outbox states" in docs/messages.md):

    queued ──claim──▶ sending ──▶ sent | failed | skipped
       ▲                 │
       └──── retry ──────┤ (transient error, backoff)
                         └──▶ in_doubt  (found `sending` after a crash; never re-sent
                                          unless the channel takes an idempotency key)

Every update made on behalf of a claim names its claim token, so a dispatcher that lost
its claim (a recovery ran meanwhile) can't overwrite what another one recorded.
Times are epoch milliseconds.

A row also carries its journey's `priority` and `controls` (quiet hours, over limit;
messages/controls.py). When a control holds a row back it goes back to `queued` with a
later `next_attempt_at` and the reason `deferred: …`, or ends `skipped`; either way
`outbox_log` keeps what was decided and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .connection import OUTBOX, Connection
from .scan import Page, newest

STATES = ("queued", "sending", "sent", "failed", "skipped", "in_doubt")
FINAL_STATES = frozenset({"sent", "failed", "skipped", "in_doubt"})

_COLUMNS = (
    "id, idempotency_key, profile_id, message, kind, topic, channel, candidates, journey, "
    "step, data, state, reason, attempts, next_attempt_at, claim_token, claimed_by, "
    "claimed_at, send_token, recipient, language, provider_id, created_at, updated_at, "
    "sent_at, priority, controls, untrusted"
)
DEFERRED_PREFIX = "deferred: "
ONSITE_CHANNEL = "onsite"
"""The channel whose rows the snippet's pull hands out (store/onsite.py), when the person
comes back to the shop: a row of it waiting may never be shown."""
"""How the reason of a row a control put off starts (`deferred: quiet hours`)."""


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row as stored."""

    id: int
    idempotency_key: str
    profile_id: int
    message: str
    kind: str
    topic: str | None
    channel: str | None
    candidates: list[str]
    journey: str | None
    step: str | None
    data: dict[str, Any]
    state: str
    reason: str | None
    attempts: int
    next_attempt_at: int
    claim_token: str | None
    claimed_by: str | None
    claimed_at: int | None
    send_token: str | None
    """The claim under which the provider was (about to be) called."""
    recipient: str | None
    language: str | None
    provider_id: str | None
    created_at: int
    updated_at: int
    sent_at: int | None
    priority: int = 0
    """Its journey's priority: the daily budget goes to the highest first."""
    controls: dict[str, str] = field(default_factory=dict)
    """What it does in quiet hours and over a cap: {"quiet_hours": …, "over_limit": …}."""
    untrusted: tuple[str, ...] = ()
    """The keys of `data` that came from untrusted input (may not aim links)."""

    def as_json(self) -> dict[str, Any]:
        """The row as `kanal outbox --json` and the admin API show it."""
        return {
            "id": self.id, "idempotencyKey": self.idempotency_key,
            "profileId": self.profile_id, "message": self.message, "kind": self.kind,
            "topic": self.topic, "channel": self.channel, "candidates": self.candidates,
            "journey": self.journey, "step": self.step, "state": self.state,
            "reason": self.reason, "attempts": self.attempts,
            "nextAttemptAt": self.next_attempt_at, "recipient": self.recipient,
            "language": self.language, "providerId": self.provider_id,
            "createdAt": self.created_at, "updatedAt": self.updated_at,
            "sentAt": self.sent_at, "priority": self.priority, "controls": self.controls,
            "untrustedData": list(self.untrusted),
        }


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), r[5], r[6],
        json.loads(r[7]), r[8], r[9], json.loads(r[10]), str(r[11]), r[12], int(r[13]),
        int(r[14]), r[15], r[16], r[17], r[18], r[19], r[20], r[21], int(r[22]), int(r[23]),
        r[24], int(r[25] or 0), json.loads(r[26]) if r[26] else {},
        tuple(json.loads(r[27])) if r[27] else (),
    )


@dataclass(frozen=True)
class NewRow:
    """What enqueue writes."""

    idempotency_key: str
    profile_id: int
    message: str
    kind: str
    topic: str | None
    channel: str | None
    candidates: Sequence[str]
    journey: str | None
    step: str | None
    data: dict[str, Any]
    state: str
    reason: str | None
    next_attempt_at: int
    now: int
    priority: int = 0
    controls: Mapping[str, str] | None = None
    untrusted: Sequence[str] = ()


def insert(conn: Connection, row: NewRow) -> tuple[int, bool]:
    """Add a row unless its idempotency key exists; (id, True when it was added)."""
    cur = conn.execute(
        "INSERT INTO outbox (idempotency_key, profile_id, message, kind, topic, channel, "
        "candidates, journey, step, data, state, reason, next_attempt_at, created_at, "
        "updated_at, priority, controls, untrusted) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(idempotency_key) DO NOTHING RETURNING id",
        (row.idempotency_key, row.profile_id, row.message, row.kind, row.topic, row.channel,
         json.dumps(list(row.candidates)), row.journey, row.step,
         json.dumps(row.data, ensure_ascii=False, default=str), row.state, row.reason,
         row.next_attempt_at, row.now, row.now, int(row.priority),
         json.dumps(dict(row.controls), sort_keys=True) if row.controls else None,
         json.dumps(sorted(row.untrusted)) if row.untrusted else None),
    )
    added = cur.fetchone()
    if added is not None:
        if row.state == "queued":
            conn.hint(OUTBOX)  # every node's dispatcher: there is work
        return int(added[0]), True
    found = conn.execute("SELECT id FROM outbox WHERE idempotency_key = ?",
                         (row.idempotency_key,)).fetchone()
    return int(found[0]), False


def get(conn: Connection, outbox_id: int) -> OutboxRow | None:
    """One row, or None."""
    r = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
    return None if r is None else _row(r)


def by_key(conn: Connection, idempotency_key: str) -> OutboxRow | None:
    """The row made for an idempotency key, or None."""
    r = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE idempotency_key = ?",
                     (idempotency_key,)).fetchone()
    return None if r is None else _row(r)


def by_provider_id(conn: Connection, channel: str,
                   provider_id: str) -> OutboxRow | None:
    """The newest row a channel sent under the provider's id (Twilio's SID), or None."""
    r = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE provider_id = ? AND channel = ? "
                     f"ORDER BY id DESC LIMIT 1", (provider_id, channel)).fetchone()
    return None if r is None else _row(r)


def listing(conn: Connection, *, state: str | None = None, limit: int = 50,
            profile_id: int | None = None) -> list[OutboxRow]:
    """Rows newest first, optionally in one state or of one profile."""
    where: list[str] = []
    args: list[Any] = []
    if state is not None:
        where.append("state = ?")
        args.append(state)
    if profile_id is not None:
        where.append("profile_id = ?")
        args.append(profile_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox {clause} ORDER BY id DESC LIMIT ?",
                        (*args, limit)).fetchall()
    return [_row(r) for r in rows]


def page(conn: Connection, *, state: str | None = None, channel: str | None = None,
         message: str | None = None, before: int | None = None, limit: int = 50,
         window: int = 5000) -> tuple[list[OutboxRow], Page]:
    """Rows newest first for the dashboard: by state on its index (outbox_state_id), by
    channel and message within a bounded window (store/scan.py)."""
    found = newest(
        conn, "outbox", _COLUMNS, indexed=[("state = ?", state)] if state else [],
        filters=[c for c in (("channel = ?", channel), ("message = ?", message)) if c[1]],
        before=before, limit=limit, window=window)
    return [_row(r) for r in found.rows], found


def count_state(conn: Connection, state: str) -> int:
    """Rows in one state (a count over that state's part of an index)."""
    return int(conn.execute("SELECT count(*) FROM outbox WHERE state = ?",
                            (state,)).fetchone()[0])


def counts(conn: Connection) -> dict[str, int]:
    """How many rows are in each state."""
    return {str(s): int(n) for s, n in
            conn.execute("SELECT state, count(*) FROM outbox GROUP BY state")}


def due_channels(conn: Connection, now: int) -> list[str]:
    """Channels with queued rows that are due."""
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT channel FROM outbox WHERE state = 'queued' AND next_attempt_at <= ? "
        "AND channel IS NOT NULL", (now,))]


def fail_channel(conn: Connection, channel: str, now: int, reason: str) -> int:
    """End the due queued rows of a channel that isn't there as `failed`; how many."""
    cur = conn.execute(
        "UPDATE outbox SET state = 'failed', reason = ?, updated_at = ? "
        "WHERE state = 'queued' AND channel = ? AND next_attempt_at <= ?",
        (reason[:1000], now, channel, now))
    return int(cur.rowcount)


def claim(conn: Connection, channel: str, now: int, limit: int, *, token: str,
          owner: str) -> list[OutboxRow]:
    """Move up to `limit` due queued rows of a channel to `sending` under `token`.

    Highest priority first, then the longest due. Call inside a claim transaction
    (`transaction(conn, claim=True)`): the select locks the rows it returns and skips
    rows another dispatcher is claiming (dialect.skip_locked), and the update takes
    only rows still queued, so two dispatchers, on one node or several, never claim
    one row. (On SQLite, BEGIN IMMEDIATE serialises the claims instead.)
    """
    if limit <= 0:
        return []
    ids: list[int] = []
    # One index range (outbox_claim) per priority, highest first: a single ORDER BY
    # priority DESC, next_attempt_at would sort every due row on every claim.
    for priority in _queued_priorities(conn, channel):
        ids += [int(r[0]) for r in conn.execute(
            "SELECT id FROM outbox WHERE state = 'queued' AND channel = ? AND priority = ? "
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
            + conn.dialect.skip_locked, (channel, priority, now, limit - len(ids)))]
        if len(ids) >= limit:
            break
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    conn.execute(
        f"UPDATE outbox SET state = 'sending', claim_token = ?, claimed_by = ?, "
        f"claimed_at = ?, attempts = attempts + 1, updated_at = ? "
        f"WHERE id IN ({marks}) AND state = 'queued'", (token, owner, now, now, *ids))
    rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id IN ({marks}) "
                        f"AND claim_token = ? AND state = 'sending' "
                        f"ORDER BY priority DESC, next_attempt_at, id", (*ids, token)).fetchall()
    return [_row(r) for r in rows]


def _queued_priorities(conn: Connection, channel: str) -> list[int]:
    """The priorities of a channel's queued rows, highest first (a skip scan of the index)."""
    return [int(r[0]) for r in conn.execute(
        """WITH RECURSIVE p(v) AS (
               SELECT max(priority) FROM outbox WHERE state = 'queued' AND channel = ?1
               UNION ALL
               SELECT (SELECT max(priority) FROM outbox
                       WHERE state = 'queued' AND channel = ?1 AND priority < p.v)
               FROM p WHERE p.v IS NOT NULL)
           SELECT v FROM p WHERE v IS NOT NULL""", (channel,))]


def orphans(conn: Connection, *, not_owner: str, alive: Sequence[str] = (),
            claimed_before: int | None = None) -> list[OutboxRow]:
    """Rows left in `sending` by a dispatcher that is gone: claimed by an owner other
    than `not_owner` that is not `alive` (a node whose lease is current), or, alive or
    not, claimed before `claimed_before` (stuck)."""
    gone = "claimed_by IS NULL"
    args: list[Any] = [not_owner]
    if alive:
        gone += f" OR claimed_by NOT IN ({','.join('?' * len(alive))})"
        args += list(alive)
    else:
        gone += " OR 1 = 1"
    if claimed_before is not None:
        gone += " OR claimed_at < ?"
        args.append(claimed_before)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM outbox WHERE state = 'sending' "
                        f"AND (claimed_by IS NULL OR claimed_by != ?) AND ({gone}) "
                        "ORDER BY id", args).fetchall()
    return [_row(r) for r in rows]


# Updates made by the holder of a claim. A recovery keeps the token on the row (it moves
# it to in_doubt or back to queued), so the late holder may still record what really
# happened; a new claim replaces the token, and then the old holder's update is void.
_REFUND = "CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"
"""The attempt a claim charged, given back."""
_CLAIMED = "id = ? AND claim_token = ? AND state IN ('sending', 'in_doubt', 'queued')"


def prepare(conn: Connection, outbox_id: int, token: str, *, recipient: str,
            language: str | None, topic: str | None, now: int) -> bool:
    """Mark the claim as about to call the provider (committed before the call).

    A row found in `sending` after a crash was sent maybe when its send_token is its
    claim token, and certainly not otherwise.
    """
    cur = conn.execute(
        f"UPDATE outbox SET recipient = ?, language = ?, topic = coalesce(?, topic), "
        f"send_token = claim_token, updated_at = ? WHERE {_CLAIMED} AND state = 'sending'",
        (recipient, language, topic, now, outbox_id, token))
    return bool(cur.rowcount)


def mark_sent(conn: Connection, outbox_id: int, token: str, *,
              provider_id: str | None, now: int) -> bool:
    """The provider accepted the message."""
    cur = conn.execute(
        f"UPDATE outbox SET state = 'sent', provider_id = ?, reason = NULL, sent_at = ?, "
        f"updated_at = ? WHERE {_CLAIMED}", (provider_id, now, now, outbox_id, token))
    return bool(cur.rowcount)


def mark_final(conn: Connection, outbox_id: int, token: str, state: str,
               reason: str, now: int) -> bool:
    """End a claimed row `failed`, `skipped` or `in_doubt` with a reason."""
    if state not in FINAL_STATES or state == "sent":
        raise ValueError(f"state must be failed, skipped or in_doubt, not {state!r}")
    cur = conn.execute(
        f"UPDATE outbox SET state = ?, reason = ?, updated_at = ? WHERE {_CLAIMED}",
        (state, reason[:1000], now, outbox_id, token))
    return bool(cur.rowcount)


def mark_retry(conn: Connection, outbox_id: int, token: str, *, reason: str,
               next_attempt_at: int, now: int) -> bool:
    """Put a claimed row back in the queue for a later attempt (claim token kept)."""
    cur = conn.execute(
        f"UPDATE outbox SET state = 'queued', reason = ?, next_attempt_at = ?, "
        f"updated_at = ? WHERE {_CLAIMED}",
        (reason[:1000], next_attempt_at, now, outbox_id, token))
    return bool(cur.rowcount)


def release(conn: Connection, outbox_ids: Iterable[int], token: str, *,
            next_attempt_at: int, now: int) -> None:
    """Give claimed rows back untried (the attempt they were charged is refunded)."""
    conn.executemany(
        f"UPDATE outbox SET state = 'queued', attempts = {_REFUND}, "
        f"next_attempt_at = ?, updated_at = ? WHERE {_CLAIMED} AND state = 'sending'",
        [(next_attempt_at, now, i, token) for i in outbox_ids])


def defer(conn: Connection, outbox_id: int, token: str, *, until: int,
          reason: str, now: int) -> bool:
    """Give a claimed row back untried until `until`, its claim released (a control held it).

    The attempt the claim charged is refunded; the reason becomes `deferred: <reason>`.
    """
    cur = conn.execute(
        f"UPDATE outbox SET state = 'queued', attempts = {_REFUND}, "
        f"next_attempt_at = ?, reason = ?, claim_token = NULL, claimed_by = NULL, "
        f"claimed_at = NULL, updated_at = ? WHERE {_CLAIMED} AND state = 'sending'",
        (until, (DEFERRED_PREFIX + reason)[:1000], now, outbox_id, token))
    return bool(cur.rowcount)


@dataclass(frozen=True)
class Sent:
    """A marketing row already sent to a person (what frequency caps count)."""

    id: int
    channel: str | None
    at: int
    priority: int
    journey: str | None


_HANDED = "(state IN ('sent', 'in_doubt') OR (state = 'sending' AND send_token = claim_token))"
"""Rows the provider got, may have got, or is being given (prepared by a dispatcher,
which may run on another node: what the caps count as sent)."""
_WAITING = ("(state = 'queued' OR (state = 'sending' "
            "AND (send_token IS NULL OR send_token != claim_token)))")
"""Rows not yet handed to the provider (queued, or claimed and not prepared)."""


def sent_marketing(conn: Connection, profile_ids: Iterable[int], since: int, *,
                   exclude: int | None = None) -> list[Sent]:
    """Marketing rows of these profiles sent (or in doubt, or being sent) at or after
    `since`, oldest first.

    An in-doubt row (or one being sent) has no sent_at; the time of its claim stands
    in for it.
    """
    ids = sorted(set(profile_ids))
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, channel, coalesce(sent_at, claimed_at, updated_at) AS at, priority, "
        f"journey FROM outbox WHERE profile_id IN ({marks}) AND kind = 'marketing' "
        f"AND {_HANDED} AND coalesce(sent_at, claimed_at, updated_at) >= ? "
        f"AND id != ? ORDER BY at, id", (*ids, since, -1 if exclude is None else exclude))
    return [Sent(int(r[0]), r[1], int(r[2]), int(r[3] or 0), r[4]) for r in rows]


def queued_ahead(conn: Connection, profile_ids: Iterable[int], *, above: int,
                 due_before: int, exclude: int | None = None) -> list[Sent]:
    """Queued marketing rows of these profiles with a priority above `above`, due before
    `due_before` (or claimed by a dispatcher and not yet prepared): highest priority
    first (`at` is when each is due). On-site rows are left out: they wait for the
    person's next page view, which may never come, and must not keep the budget from a
    message that would be sent."""
    ids = sorted(set(profile_ids))
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, channel, next_attempt_at, priority, journey FROM outbox "
        f"WHERE profile_id IN ({marks}) AND kind = 'marketing' AND {_WAITING} "
        f"AND priority > ? AND next_attempt_at < ? AND id != ? "
        f"AND (channel IS NULL OR channel != ?) "
        f"ORDER BY priority DESC, next_attempt_at, id",
        (*ids, above, due_before, -1 if exclude is None else exclude, ONSITE_CHANNEL))
    return [Sent(int(r[0]), r[1], int(r[2]), int(r[3] or 0), r[4]) for r in rows]


def log_decision(conn: Connection, outbox_id: int, at: int, what: str,
                 detail: Mapping[str, Any] | None = None) -> None:
    """Note what the dispatcher decided about a row besides sending it (deferred, skipped)."""
    conn.execute("INSERT INTO outbox_log (outbox_id, at, what, detail) VALUES (?,?,?,?)",
                 (outbox_id, at, what,
                  None if detail is None else json.dumps(dict(detail), sort_keys=True)))


def outbox_log(conn: Connection, outbox_id: int) -> list[dict[str, Any]]:
    """What was decided about a row, in order: [{"at", "what", "detail"}, …]."""
    return [{"at": int(at), "what": str(what),
             "detail": None if detail is None else json.loads(detail)}
            for at, what, detail in conn.execute(
                "SELECT at, what, detail FROM outbox_log WHERE outbox_id = ? ORDER BY id",
                (outbox_id,))]


def note_feedback(conn: Connection, outbox_id: int, reason: str, now: int) -> bool:
    """Give a sent row the reason a bounce or complaint about it reported (it stays sent)."""
    cur = conn.execute("UPDATE outbox SET reason = ?, updated_at = ? WHERE id = ? "
                       "AND state = 'sent'", (reason[:1000], now, outbox_id))
    return bool(cur.rowcount)


def requeue(conn: Connection, outbox_id: int, *, now: int,
            states: Sequence[str] = ("in_doubt", "failed")) -> bool:
    """Queue a row again by hand (`kanal outbox retry`), with a fresh attempt count.

    It is due at once (next_attempt_at 0), whatever the dispatcher's clock says.
    """
    marks = ",".join("?" * len(states))
    cur = conn.execute(
        f"UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = 0, "
        f"claim_token = NULL, claimed_by = NULL, claimed_at = NULL, reason = ?, "
        f"updated_at = ? WHERE id = ? AND state IN ({marks})",
        ("queued again by hand", now, outbox_id, *states))
    if cur.rowcount:
        conn.hint(OUTBOX)
    return bool(cur.rowcount)


def delete_profile_rows(conn: Connection, profile_id: int) -> int:
    """Delete a profile's outbox rows and their log (for `kanal forget`); returns how many."""
    conn.execute("DELETE FROM outbox_log WHERE outbox_id IN "
                 "(SELECT id FROM outbox WHERE profile_id = ?)", (profile_id,))
    return int(conn.execute("DELETE FROM outbox WHERE profile_id = ?",
                            (profile_id,)).rowcount)
