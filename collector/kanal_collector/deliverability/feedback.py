"""What a bounce or a complaint does, wherever it was reported (a webhook, a DSN).

`record` runs in the caller's write transaction:

- the report is kept once (`email_feedback`; its key makes a repeat a no-op);
- a **hard bounce** puts the address on the suppression list (`hard_bounce`);
- a **soft bounce** is counted; `soft_bounce_limit` of them within `soft_bounce_days`
  put the address on the list (`soft_bounces`);
- a **complaint** unsubscribes the person from all marketing email (the same event as
  the one-click unsubscribe, tracking/unsubscribe.py) and puts the address on the list
  (`complaint`);
- each becomes an event on the person's timeline (`Email Bounced` with `bounce_type`
  hard or soft, `Email Marked as Spam`; key kind `kanal`, origin `email`), a line in
  the outbox row's log (`kanal journeys why`) and its reason (`kanal outbox`), and a
  count in the day's deliverability figures (on the day the message was sent).

The outbox row is found by the id the message was sent under (the SMTP channel's
Message-ID or a provider's id), else it is the newest email sent to that address in
the last 30 days.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..contacts import normalise_email
from ..own_events import own_event
from ..store import deliverability as store
from ..store import identities as identity_store
from ..store import outbox as outbox_store
from ..store import profiles as profile_store
from ..store.connection import Connection
from ..store.events import EventRow, append_events
from ..tracking.events import ORIGIN, profile_ids
from ..tracking.unsubscribe import unsubscribe_all_email
from .settings import Settings

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
KINDS = (HARD, SOFT, COMPLAINT)
EMAIL_BOUNCED = "Email Bounced"
EMAIL_MARKED_AS_SPAM = "Email Marked as Spam"
BOUNCED = "bounced"
COMPLAINED = "complained"
"""What outbox_log records for a row a bounce or complaint was about."""
_MATCH_WINDOW_MS = 30 * 86_400_000


@dataclass(frozen=True)
class Report:
    """One bounce or complaint about one address, as a provider or a DSN tells it."""

    kind: str
    """hard, soft or complaint."""
    address: str
    provider: str
    """ses, postmark, mailgun, sendgrid, brevo, resend or dsn."""
    event_id: str
    """The provider's id of this report (with the address and kind: the dedupe key)."""
    message_ids: tuple[str, ...] = ()
    """Ids the message went out under: its Message-ID, the provider's message id."""
    outbox_id: int | None = None
    """Known already (a VERP address named it)."""
    detail: str | None = None
    """The status and diagnostic, as the provider gave them."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")


@dataclass(frozen=True)
class Recorded:
    """What `record` did."""

    new: bool
    """False: this report was recorded before (nothing else was done)."""
    outbox_id: int | None
    profile_id: int | None
    suppressed: bool
    """The address went on the suppression list now."""
    events: int


def record(conn: Connection, report: Report, settings: Settings,
           now_ms: int) -> Recorded | None:
    """Apply one report (inside the caller's transaction); None for an address that
    isn't an email address (nothing is done)."""
    address = normalise_email(report.address) or _plain(report.address)
    if address is None:
        return None
    row = _outbox_row(conn, report, address, now_ms)
    profile_id = None if row is None else (profile_store.merged_into(conn, row.profile_id)
                                           or row.profile_id)
    if profile_id is None:
        profile_id = identity_store.identity_profile(conn, "email", address)
    key = ":".join((report.provider, report.event_id, address, report.kind))
    sent_at = row.sent_at if row is not None and row.sent_at is not None else now_ms
    feedback = store.Feedback(
        key=key if len(key) <= 300 else hashlib.sha256(key.encode()).hexdigest(),
        kind=report.kind, address=address, outbox_id=None if row is None else row.id,
        channel=None if row is None else row.channel,
        journey=None if row is None else row.journey, provider=report.provider,
        detail=(report.detail or None) and str(report.detail)[:500],
        day=store.day_of(sent_at), at=now_ms)
    if not store.add_feedback(conn, feedback):
        return Recorded(False, feedback.outbox_id, profile_id, False, 0)
    counts = {HARD: {"hard": 1}, SOFT: {"soft": 1}, COMPLAINT: {"complaints": 1}}
    store.add_daily(conn, feedback.day, feedback.channel or "", feedback.journey,
                    store.domain_of(address), **counts[report.kind])
    suppressed = _suppress(conn, report, address, feedback, settings, now_ms)
    words = _words(report)
    if row is not None:
        outbox_store.log_decision(conn, row.id, now_ms,
                                  COMPLAINED if report.kind == COMPLAINT else BOUNCED,
                                  {"reason": words, "provider": report.provider,
                                   "address": address, "suppressed": suppressed})
        outbox_store.note_feedback(conn, row.id, words, now_ms)
    events = _events(conn, report, row, profile_id, address, words, key, now_ms)
    return Recorded(True, feedback.outbox_id, profile_id, suppressed, events)


def _plain(value: str) -> str | None:
    text = value.strip().strip("<>").lower()
    return text if text.count("@") == 1 and " " not in text and len(text) <= 254 else None


def _outbox_row(conn: Connection, report: Report, address: str,
                now_ms: int) -> outbox_store.OutboxRow | None:
    outbox_id = report.outbox_id or store.outbox_by_provider_ids(conn, report.message_ids)
    if outbox_id is not None:
        return outbox_store.get(conn, outbox_id)
    pid = identity_store.identity_profile(conn, "email", address)
    if pid is None:
        return None
    found = store.latest_sent_to(conn, [pid], address, since=now_ms - _MATCH_WINDOW_MS)
    return None if found is None else outbox_store.get(conn, found)


def _words(report: Report) -> str:
    what = {HARD: "bounced (hard)", SOFT: "bounced (soft)",
            COMPLAINT: "marked as spam"}[report.kind]
    detail = f": {report.detail}" if report.detail else ""
    return f"{what} via {report.provider}{detail}"[:500]


def _suppress(conn: Connection, report: Report, address: str,
              feedback: store.Feedback, settings: Settings, now_ms: int) -> bool:
    if report.kind == HARD:
        reason, detail = "hard_bounce", report.detail
    elif report.kind == COMPLAINT:
        reason, detail = "complaint", report.detail
    else:
        since = now_ms - settings.soft_bounce_window_ms
        n = store.count_feedback(conn, address, SOFT, since)
        if n < settings.soft_bounce_limit:
            return False
        days = settings.soft_bounce_window_ms // 86_400_000
        reason, detail = "soft_bounces", f"{n} soft bounces in {days} days"
    return store.suppress(conn, address, reason=reason, detail=detail,
                          source=report.provider, outbox_id=feedback.outbox_id, now=now_ms)


def _events(conn: Connection, report: Report, row: outbox_store.OutboxRow | None,
            profile_id: int | None, address: str, words: str, key: str,
            now_ms: int) -> int:
    source = profile_store.first_source(conn)
    if source is None or profile_id is None:
        return 0
    current, user_id, anonymous_id = profile_ids(conn, profile_id)
    if user_id is None and anonymous_id is None:
        anonymous_id = f"kanal-profile-{current}"
    props: dict[str, Any] = {"email": address, "provider": report.provider,
                             "reason": report.detail, "profile_id": current}
    if row is not None:
        props.update(outbox_id=row.id, email_id=str(row.id), message=row.message,
                     journey=row.journey, step=row.step, channel=row.channel, kind=row.kind)
    name = EMAIL_MARKED_AS_SPAM if report.kind == COMPLAINT else EMAIL_BOUNCED
    if report.kind != COMPLAINT:
        props["bounce_type"] = report.kind
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    rows: list[EventRow | None] = [own_event(
        name=name, message_id=f"kanal-feedback-{digest}", origin=ORIGIN,
        properties={k: v for k, v in props.items() if v is not None}, user_id=user_id,
        anonymous_id=anonymous_id, source_id=source, now_ms=now_ms)]
    if report.kind == COMPLAINT:
        send: dict[str, Any] = {k: props[k] for k in ("outbox_id", "message", "journey", "channel")
                if k in props}
        rows.append(unsubscribe_all_email(conn, profile_id=current, via="complaint",
                                          now_ms=now_ms, properties=send))
    kept = [r for r in rows if r is not None]
    return append_events(conn, kept)
