"""On-site tables: queued on-site messages, sign-ups waiting for their opt-in, exposures.

- `onsite_queue`: the expiry of an outbox row of the `onsite` channel. Such a row is
  never handed to the dispatcher: the snippet's pull claims it (`claim_queued`), at most
  once, on whichever of the person's browsers asks first, until it expires.
- `signups`: sign-up form submissions; the double opt-in message goes out through
  `due_signups` / `mark_signup` (state queued → sending → sent | failed | in_doubt), and
  `confirm_signup` spends the confirmation token once.
- `onsite_exposures`: the first time a person saw (or was held out of) a campaign, with
  the arm, for the experiments report.

Times are epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .connection import Connection
from .outbox import _COLUMNS, DEFERRED_PREFIX, ONSITE_CHANNEL, OutboxRow, _row

# -- the queue of journey-queued messages ----------------------------------------------

def queue_expiry(conn: Connection, outbox_id: int, profile_id: int,
                 expires_at: int) -> None:
    """Note when a queued on-site row stops being shown (a re-run changes nothing)."""
    conn.execute(
        "INSERT INTO onsite_queue (outbox_id, profile_id, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (outbox_id) DO NOTHING", (outbox_id, profile_id, expires_at))


def any_queued(conn: Connection, now: int) -> bool:
    """Whether any on-site row waits to be shown."""
    return conn.execute(
        "SELECT 1 FROM outbox WHERE state = 'queued' AND channel = ? AND next_attempt_at <= ? "
        "LIMIT 1", (ONSITE_CHANNEL, now)).fetchone() is not None


def queued_for(conn: Connection, profile_id: int, now: int) -> list[OutboxRow]:
    """A person's due, unexpired on-site rows, highest priority first."""
    cols = ", ".join(f"o.{c.strip()}" for c in _COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT {cols} FROM outbox o LEFT JOIN onsite_queue q ON q.outbox_id = o.id "
        "WHERE o.profile_id = ? AND o.state = 'queued' AND o.channel = ? "
        "AND o.next_attempt_at <= ? AND (q.expires_at IS NULL OR q.expires_at > ?) "
        "ORDER BY o.priority DESC, o.id", (profile_id, ONSITE_CHANNEL, now, now)).fetchall()
    return [_row(r) for r in rows]


def claim_queued(conn: Connection, outbox_id: int, *, language: str | None,
                 now: int) -> bool:
    """Mark a queued on-site row as delivered (sent) now; False when another browser
    (or the expiry) got it first. Call inside a write transaction."""
    cur = conn.execute(
        "UPDATE outbox SET state = 'sent', recipient = 'onsite', language = ?, sent_at = ?, "
        "updated_at = ?, attempts = attempts + 1, reason = NULL "
        "WHERE id = ? AND state = 'queued' AND channel = ?",
        (language, now, now, outbox_id, ONSITE_CHANNEL))
    return bool(cur.rowcount)


def skip_queued(conn: Connection, outbox_id: int, reason: str, now: int) -> bool:
    """End a queued on-site row the person may no longer get (consent, subscription, a
    frequency cap with `over_limit: skip`); False when it had ended already."""
    cur = conn.execute("UPDATE outbox SET state = 'skipped', reason = ?, updated_at = ? "
                       "WHERE id = ? AND state = 'queued'", (reason[:1000], now, outbox_id))
    return bool(cur.rowcount)


def defer_queued(conn: Connection, outbox_id: int, until: int, reason: str,
                 now: int) -> bool:
    """Hold a queued on-site row back until `until` (a frequency cap or the daily budget;
    the reason becomes `deferred: <reason>`, as the dispatcher's deferrals)."""
    cur = conn.execute(
        "UPDATE outbox SET next_attempt_at = ?, reason = ?, updated_at = ? "
        "WHERE id = ? AND state = 'queued'",
        (until, (DEFERRED_PREFIX + reason)[:1000], now, outbox_id))
    return bool(cur.rowcount)


def fail_queued(conn: Connection, outbox_id: int, reason: str, now: int) -> None:
    """End a queued on-site row that can't be shown (its message fails to render)."""
    conn.execute("UPDATE outbox SET state = 'failed', reason = ?, updated_at = ? "
                 "WHERE id = ? AND state = 'queued'", (reason[:1000], now, outbox_id))


def expire_queued(conn: Connection, now: int, *, default_ttl: int) -> int:
    """End on-site rows whose time is up (`skipped`, reason `expired`); rows without an
    expiry of their own live `default_ttl` ms. Returns how many."""
    ids = [int(r[0]) for r in conn.execute(
        "SELECT o.id FROM outbox o LEFT JOIN onsite_queue q ON q.outbox_id = o.id "
        "WHERE o.state = 'queued' AND o.channel = ? "
        "AND coalesce(q.expires_at, o.created_at + ?) <= ?",
        (ONSITE_CHANNEL, default_ttl, now))]
    for outbox_id in ids:
        conn.execute("UPDATE outbox SET state = 'skipped', reason = 'expired', updated_at = ? "
                     "WHERE id = ? AND state = 'queued'", (now, outbox_id))
    return len(ids)


# -- sign-ups ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Signup:
    """One sign-up form submission."""

    id: int
    channel: str
    """email or sms: where the address is and the confirmation goes."""
    address: str
    topic: str | None
    campaign: str | None
    message: str | None
    consent_text: str
    anonymous_id: str | None
    source_id: int
    base_url: str
    """Where the confirmation link points (the collector, or the shop's confirm page)."""
    created_at: int
    expires_at: int
    state: str
    attempts: int
    confirmed_at: int | None


_SIGNUP = ("id, channel, address, topic, campaign, message, consent_text, anonymous_id, "
           "source_id, base_url, created_at, expires_at, state, attempts, confirmed_at")


def _signup(r: Sequence[Any]) -> Signup:
    return Signup(int(r[0]), str(r[1]), str(r[2]), r[3], r[4], r[5], str(r[6]), r[7],
                  int(r[8]), str(r[9]), int(r[10]), int(r[11]), str(r[12]), int(r[13]), r[14])


def add_signup(conn: Connection, *, channel: str, address: str,
               topic: str | None, campaign: str | None, message: str | None,
               consent_text: str, anonymous_id: str | None, source_id: int, base_url: str,
               now: int, expires_at: int) -> int:
    """A new submission, its confirmation queued now; returns its id."""
    row = conn.execute(
        "INSERT INTO signups (channel, address, topic, campaign, message, "
        "consent_text, anonymous_id, source_id, base_url, created_at, expires_at, state, "
        "next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,'queued',?) RETURNING id",
        (channel, address, topic, campaign, message, consent_text, anonymous_id,
         source_id, base_url, now, expires_at, now)).fetchone()
    return int(row[0])


def set_token(conn: Connection, signup_id: int, token_hash: str) -> None:
    """The hash of the confirmation token about to be sent (a retry makes a new one)."""
    conn.execute("UPDATE signups SET token_hash = ? WHERE id = ?", (token_hash, signup_id))


def recent_signups(conn: Connection, channel: str, address: str, since: int) -> int:
    """How many submissions named this address since a time."""
    return int(conn.execute(
        "SELECT count(*) FROM signups WHERE channel = ? AND address = ? AND created_at >= ?",
        (channel, address, since)).fetchone()[0])


def signup_by_token(conn: Connection, token_hash: str) -> Signup | None:
    """The submission a confirmation token belongs to."""
    r = conn.execute(f"SELECT {_SIGNUP} FROM signups WHERE token_hash = ?",
                     (token_hash,)).fetchone()
    return None if r is None else _signup(r)


def confirm_signup(conn: Connection, signup_id: int, now: int) -> bool:
    """Spend the confirmation (once); False when it was spent already."""
    cur = conn.execute("UPDATE signups SET confirmed_at = ? WHERE id = ? "
                       "AND confirmed_at IS NULL", (now, signup_id))
    return bool(cur.rowcount)


def claim_signups(conn: Connection, now: int, limit: int) -> list[Signup]:
    """Due queued confirmations, moved to `sending` (inside a write transaction)."""
    ids = [int(r[0]) for r in conn.execute(
        "SELECT id FROM signups WHERE state = 'queued' AND next_attempt_at <= ? "
        "ORDER BY next_attempt_at, id LIMIT ?", (now, limit))]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    conn.execute(f"UPDATE signups SET state = 'sending', attempts = attempts + 1 "
                 f"WHERE id IN ({marks}) AND state = 'queued'", ids)
    rows = conn.execute(f"SELECT {_SIGNUP} FROM signups WHERE id IN ({marks}) "
                        f"AND state = 'sending' ORDER BY id", ids).fetchall()
    return [_signup(r) for r in rows]


def settle_signup(conn: Connection, signup_id: int, state: str, *, now: int,
                  reason: str | None = None, next_attempt_at: int | None = None) -> None:
    """Record how sending a confirmation went: sent, failed, in_doubt or queued again."""
    if state not in ("sent", "failed", "in_doubt", "queued"):
        raise ValueError(f"state must be sent, failed, in_doubt or queued, not {state!r}")
    conn.execute(
        "UPDATE signups SET state = ?, reason = ?, next_attempt_at = coalesce(?, "
        "next_attempt_at), sent_at = coalesce(?, sent_at) WHERE id = ? AND state = 'sending'",
        (state, reason[:500] if reason else None, next_attempt_at,
         now if state == "sent" else None, signup_id))


def orphaned_signups(conn: Connection) -> list[int]:
    """Confirmations left in `sending` by a process that died."""
    return [int(r[0]) for r in conn.execute("SELECT id FROM signups WHERE state = 'sending'")]


# -- exposures ------------------------------------------------------------------------

def add_exposures(conn: Connection,
                  rows: Iterable[tuple[str, int, str, int]]) -> None:
    """(campaign, profile_id, arm, at): the first exposure of each person counts."""
    conn.executemany(
        "INSERT INTO onsite_exposures (campaign, profile_id, arm, first_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (campaign, profile_id) DO NOTHING", list(rows))


def exposures(conn: Connection, campaign: str, since: int,
              until: int) -> list[tuple[int, str, int]]:
    """(profile_id, arm, first_at) of a campaign's people first exposed in a window."""
    return [(int(p), str(a), int(t)) for p, a, t in conn.execute(
        "SELECT profile_id, arm, first_at FROM onsite_exposures WHERE campaign = ? "
        "AND first_at >= ? AND first_at < ? ORDER BY profile_id", (campaign, since, until))]


def exposed_campaigns(conn: Connection) -> list[str]:
    """Every campaign anyone was exposed to."""
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT campaign FROM onsite_exposures ORDER BY campaign")]


def move_exposures(conn: Connection, into: int, other: int) -> None:
    """A merge: `other`'s exposures become `into`'s (the earlier one of each campaign)."""
    for campaign, arm, at in conn.execute(
            "SELECT campaign, arm, first_at FROM onsite_exposures WHERE profile_id = ?",
            (other,)).fetchall():
        conn.execute(
            "INSERT INTO onsite_exposures (campaign, profile_id, arm, first_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (campaign, profile_id) DO UPDATE SET "
            "arm = CASE WHEN excluded.first_at < onsite_exposures.first_at "
            "THEN excluded.arm ELSE onsite_exposures.arm END, "
            "first_at = CASE WHEN excluded.first_at < onsite_exposures.first_at "
            "THEN excluded.first_at ELSE onsite_exposures.first_at END",
            (campaign, into, arm, at))
    conn.execute("DELETE FROM onsite_exposures WHERE profile_id = ?", (other,))


def delete_profile(conn: Connection, profile_id: int,
                   identities: Sequence[tuple[str, str]]) -> None:
    """`kanal forget`: the person's exposures, and the sign-ups of their addresses and
    browsers (the consent texts they agreed to go with them)."""
    conn.execute("DELETE FROM onsite_exposures WHERE profile_id = ?", (profile_id,))
    conn.execute("DELETE FROM onsite_queue WHERE profile_id = ?", (profile_id,))
    for kind, value in identities:
        if kind in ("email", "phone"):
            conn.execute("DELETE FROM signups WHERE channel = ? AND address = ?",
                         ("email" if kind == "email" else "sms", value))
        elif kind == "anonymous_id":
            conn.execute("DELETE FROM signups WHERE anonymous_id = ?", (value,))


def converted(conn: Connection, profile_id: int, event: str, since: int,
              until: int) -> bool:
    """Whether a person has an `event` between two times (a campaign's goal)."""
    return conn.execute(
        "SELECT 1 FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE pe.profile_id = ? AND pe.timestamp >= ? AND pe.timestamp <= ? "
        "AND e.event = ? AND e.type = 'track' LIMIT 1",
        (profile_id, since, until, event)).fetchone() is not None


def action_counts(conn: Connection, names: Sequence[str], since: int,
                  until: int) -> list[tuple[str, str]]:
    """(event name, body) of Kanal's on-site events in a window (decoded by the caller).

    The body is the stored text, for its properties: the top-level keys its columns
    hold may be absent (store/events.py `slim_body`)."""
    marks = ",".join("?" * len(names))
    return [(str(n), str(b)) for n, b in conn.execute(
        f"SELECT event, body FROM events WHERE key_kind = 'kanal' AND event IN ({marks}) "
        "AND timestamp >= ? AND timestamp < ?", (*names, since, until))]
