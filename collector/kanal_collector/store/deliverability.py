"""Deliverability tables: the email suppression list, bounce and complaint reports, the
daily send/feedback counts and the per-period send counters (deliverability/).

Written in the SQL subset SQLite and PostgreSQL share; times are epoch ms, days are UTC
day numbers (ms // 86 400 000).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .connection import Connection

DAY_MS = 86_400_000


def day_of(ms: int) -> int:
    """The UTC day number of a time in ms."""
    return ms // DAY_MS


def domain_of(address: str | None) -> str:
    """The domain of an email address, lower-cased ('' when there is none)."""
    if not address or "@" not in address:
        return ""
    return address.rsplit("@", 1)[1].strip().lower()


# -- the suppression list -----------------------------------------------------------------


@dataclass(frozen=True)
class Suppression:
    """One address on the suppression list."""

    address: str
    reason: str
    detail: str | None
    source: str
    outbox_id: int | None
    created_at: int
    updated_at: int

    def as_json(self) -> dict[str, Any]:
        """As the admin API and `kanal suppressions list --json` show it."""
        return {"address": self.address, "reason": self.reason, "detail": self.detail,
                "source": self.source, "outboxId": self.outbox_id,
                "createdAt": self.created_at, "updatedAt": self.updated_at}


_SUPPRESSION = "address, reason, detail, source, outbox_id, created_at, updated_at"


def _suppression(r: Sequence[Any]) -> Suppression:
    return Suppression(str(r[0]), str(r[1]), r[2], str(r[3]),
                       None if r[4] is None else int(r[4]), int(r[5]), int(r[6]))


def suppress(conn: Connection, address: str, *, reason: str, detail: str | None,
             source: str, outbox_id: int | None, now: int, replace: bool = False) -> bool:
    """Put an address on the list; True when it was not on it. An entry already there
    keeps its reason unless `replace` (a person's own edit, not an automatic report)."""
    existing = suppression(conn, address)
    if existing is not None and not replace:
        return False
    conn.execute(
        f"INSERT INTO email_suppressions ({_SUPPRESSION}) VALUES (?,?,?,?,?,?,?) "
        "ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, "
        "detail = excluded.detail, source = excluded.source, outbox_id = excluded.outbox_id, "
        "updated_at = excluded.updated_at",
        (address, reason, detail, source, outbox_id, now, now))
    return existing is None


def unsuppress(conn: Connection, address: str) -> bool:
    """Take an address off the list; True when it was on it."""
    return bool(conn.execute("DELETE FROM email_suppressions WHERE address = ?",
                             (address,)).rowcount)


def suppression(conn: Connection, address: str) -> Suppression | None:
    """The entry of one address, or None."""
    r = conn.execute(f"SELECT {_SUPPRESSION} FROM email_suppressions WHERE address = ?",
                     (address,)).fetchone()
    return None if r is None else _suppression(r)


def any_suppressed(conn: Connection) -> bool:
    """Whether the list has any entry (the send path skips the lookup when empty)."""
    return conn.execute("SELECT 1 FROM email_suppressions LIMIT 1").fetchone() is not None


def suppressions(conn: Connection, *, after: str = "", limit: int = 1000,
                 reason: str | None = None) -> list[Suppression]:
    """Entries in address order after `after` (a page), optionally of one reason."""
    where, args = "address > ?", [after]
    if reason is not None:
        where += " AND reason = ?"
        args.append(reason)
    rows = conn.execute(f"SELECT {_SUPPRESSION} FROM email_suppressions WHERE {where} "
                        "ORDER BY address LIMIT ?", (*args, limit)).fetchall()
    return [_suppression(r) for r in rows]


def all_suppressions(conn: Connection, *, reason: str | None = None,
                     page: int = 1000) -> Iterator[Suppression]:
    """Every entry in address order, read a page at a time (exports)."""
    after = ""
    while True:
        rows = suppressions(conn, after=after, limit=page, reason=reason)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].address


def count_suppressions(conn: Connection) -> dict[str, int]:
    """How many entries per reason."""
    return {str(r): int(n) for r, n in conn.execute(
        "SELECT reason, count(*) FROM email_suppressions GROUP BY reason ORDER BY reason")}


# -- bounce and complaint reports ---------------------------------------------------------


@dataclass(frozen=True)
class Feedback:
    """One bounce or complaint about one address (a report of a webhook or a DSN)."""

    key: str
    """Dedupes a repeated report: provider and its event id (or the DSN's Message-ID)."""
    kind: str
    """hard, soft or complaint."""
    address: str
    outbox_id: int | None
    channel: str | None
    journey: str | None
    provider: str
    detail: str | None
    day: int
    """The UTC day the report counts on in the daily rates (the send's day)."""
    at: int


_FEEDBACK = "key, kind, address, outbox_id, channel, journey, domain, provider, detail, day, at"


def add_feedback(conn: Connection, f: Feedback) -> bool:
    """Record a report unless its key was recorded before; True when it is new."""
    row = conn.execute(
        f"INSERT INTO email_feedback ({_FEEDBACK}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (key) DO NOTHING RETURNING id",
        (f.key, f.kind, f.address, f.outbox_id, f.channel, f.journey, domain_of(f.address),
         f.provider, f.detail, f.day, f.at)).fetchone()
    return row is not None


def count_feedback(conn: Connection, address: str, kind: str, since: int) -> int:
    """Reports of `kind` about an address at or after `since` (ms)."""
    return int(conn.execute(
        "SELECT count(*) FROM email_feedback WHERE address = ? AND kind = ? AND at >= ?",
        (address, kind, since)).fetchone()[0])


def feedback_of_outbox(conn: Connection, outbox_id: int) -> list[dict[str, Any]]:
    """The reports about one outbox row, oldest first."""
    return [{"kind": str(r[0]), "address": str(r[1]), "provider": str(r[2]),
             "detail": r[3], "at": int(r[4])}
            for r in conn.execute(
                "SELECT kind, address, provider, detail, at FROM email_feedback "
                "WHERE outbox_id = ? ORDER BY at, id", (outbox_id,))]


def delete_feedback_of(conn: Connection, addresses: Iterable[str]) -> int:
    """Forget the reports about these addresses (`kanal forget`); returns how many."""
    return sum(int(conn.execute("DELETE FROM email_feedback WHERE address = ?",
                                (a,)).rowcount) for a in set(addresses))


# -- daily counts -------------------------------------------------------------------------

COUNTS = ("sent", "hard", "soft", "complaints")


def add_daily(conn: Connection, day: int, channel: str, journey: str | None,
              domain: str, **counts: int) -> None:
    """Add to one day's counts of a channel, journey and recipient domain."""
    unknown = set(counts) - set(COUNTS)
    if unknown:
        raise ValueError(f"counts: unknown {', '.join(sorted(unknown))}")
    values = [int(counts.get(c, 0)) for c in COUNTS]
    conn.execute(
        "INSERT INTO email_daily (day, channel, journey, domain, sent, hard, soft, "
        "complaints) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (day, channel, journey, domain) "
        "DO UPDATE SET sent = email_daily.sent + excluded.sent, "
        "hard = email_daily.hard + excluded.hard, soft = email_daily.soft + excluded.soft, "
        "complaints = email_daily.complaints + excluded.complaints",
        (day, channel, journey or "", domain, *values))


def daily_rows(conn: Connection, since_day: int, until_day: int
               ) -> list[tuple[int, str, str, str, int, int, int, int]]:
    """(day, channel, journey, domain, sent, hard, soft, complaints) for days in
    [since_day, until_day)."""
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]), int(r[6]),
             int(r[7])) for r in conn.execute(
        "SELECT day, channel, journey, domain, sent, hard, soft, complaints FROM email_daily "
        "WHERE day >= ? AND day < ? ORDER BY day, channel, journey, domain",
        (since_day, until_day))]


def backfill_daily(conn: Connection) -> None:
    """Count email already sent (rows with an address for a recipient) by day, channel,
    journey and domain; run once by the migration that adds the table."""
    sent: Counter[tuple[int, str, str, str]] = Counter()
    for sent_at, channel, journey, recipient in conn.execute(
            "SELECT sent_at, channel, journey, recipient FROM outbox "
            "WHERE state = 'sent' AND sent_at IS NOT NULL AND recipient LIKE '%@%'"):
        sent[(day_of(int(sent_at)), str(channel or ""), str(journey or ""),
              domain_of(recipient))] += 1
    for (day, channel, journey, domain), n in sorted(sent.items()):
        add_daily(conn, day, channel, journey, domain, sent=n)


# -- send counters (warm-up, throttles) ---------------------------------------------------


def add_count(conn: Connection, scope: str, period: int, n: int = 1) -> None:
    """Count `n` more messages in a scope's period (its start, ms)."""
    conn.execute(
        "INSERT INTO send_counts (scope, period, count) VALUES (?,?,?) "
        "ON CONFLICT (scope, period) DO UPDATE SET count = send_counts.count + excluded.count",
        (scope, period, n))


def get_count(conn: Connection, scope: str, period: int) -> int:
    """Messages counted in a scope's period."""
    row = conn.execute("SELECT count FROM send_counts WHERE scope = ? AND period = ?",
                       (scope, period)).fetchone()
    return 0 if row is None else int(row[0])


def set_fact(conn: Connection, key: str, value: str, *, replace: bool = True) -> None:
    """Set a `meta` value in the caller's transaction (keep an existing one unless
    `replace`)."""
    action = "DO UPDATE SET value = excluded.value" if replace else "DO NOTHING"
    conn.execute(f"INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) {action}",
                 (key, value))


def prune_counts(conn: Connection, before: int) -> int:
    """Drop the counters of periods that started before `before` (ms)."""
    return int(conn.execute("DELETE FROM send_counts WHERE period < ?", (before,)).rowcount)


# -- finding the outbox row of a report ---------------------------------------------------


def outbox_by_provider_ids(conn: Connection, ids: Iterable[str]) -> int | None:
    """The newest outbox row sent under any of these ids (a Message-ID with or without
    its angle brackets, or a provider's own id), or None."""
    wanted: list[str] = []
    for value in ids:
        bare = value.strip().strip("<>").strip()
        if bare:
            wanted += [bare, f"<{bare}>"]
    if not wanted:
        return None
    marks = ",".join("?" * len(wanted))
    row = conn.execute(f"SELECT id FROM outbox WHERE provider_id IN ({marks}) "
                       "ORDER BY id DESC LIMIT 1", wanted).fetchone()
    return None if row is None else int(row[0])


def latest_sent_to(conn: Connection, profile_ids: Iterable[int], address: str,
                   since: int) -> int | None:
    """The newest row sent to `address` for these profiles since `since`, or None."""
    ids = sorted(set(profile_ids))
    if not ids:
        return None
    marks = ",".join("?" * len(ids))
    row = conn.execute(
        f"SELECT id FROM outbox WHERE profile_id IN ({marks}) AND recipient = ? "
        f"AND state = 'sent' AND sent_at >= ? ORDER BY sent_at DESC, id DESC LIMIT 1",
        (*ids, address, since)).fetchone()
    return None if row is None else int(row[0])


def recent_named_events(conn: Connection, profile_id: int, names: Sequence[str],
                        limit: int = 200) -> list[tuple[int, str]]:
    """(timestamp, body) of a profile's newest events with one of these names.

    The body is the stored text, for its properties: the top-level keys its columns
    hold may be absent (store/events.py `slim_body`)."""
    marks = ",".join("?" * len(names))
    return [(int(r[0]), str(r[1])) for r in conn.execute(
        f"SELECT e.timestamp, e.body FROM profile_events pe JOIN events e "
        f"ON e.id = pe.event_id WHERE pe.profile_id = ? AND e.event IN ({marks}) "
        f"ORDER BY pe.timestamp DESC LIMIT ?", (profile_id, *names, limit))]
