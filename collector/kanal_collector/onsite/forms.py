"""Sign-up forms: a submission, its checks, and the confirmation that makes it count.

A submission (`/onsite/form`) must carry the ticket the pull gave its message (signed,
naming this browser, for a message with a form), be sent no sooner than
`form_min_seconds` after the ticket was issued and no later than `form_max_age`, leave
the hidden honeypot field empty, tick the consent box, and give a valid email address
and/or phone number (contacts.py). Each client address may send `form_rate_limit` a
minute. Then a "Sign-up Form Submitted" event records the consent text the visitor was
shown (rendered from the shop's message), and a double opt-in message is queued for
each address (the worker in confirm.py sends it).

What a bot or a prober learns is nothing: a filled honeypot, an address that already
got `address_limit` confirmations today, or an address that is suppressed (`kanal
forget`, the email suppression list) all answer like a success and send nothing.

Confirming (`confirm`) spends the link once and writes "Sign-up Confirmed"; the profiles
step makes the address a verified identity and subscription (profiles/own_identities.py).
The browser that submitted is linked only when it is the one confirming.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..contacts import check_email, check_phone, normalise_country
from ..errors import BadRequest
from ..own_events import own_event
from ..profiles.own_identities import SIGNUP_CONFIRMED
from ..profiles.privacy import is_suppressed
from ..store import deliverability as suppression_list
from ..store import onsite as store
from ..store.connection import Connection
from ..store.db import transaction
from ..store.events import append_events
from .access import Visitor
from .events import FORM_SUBMITTED, onsite_event
from .settings import OnsiteSettings
from .signing import read

SMS = "sms"
EMAIL = "email"


@dataclass(frozen=True)
class Submission:
    """What a visitor sent, checked."""

    campaign: str | None
    arm: str | None
    message: str
    addresses: tuple[tuple[str, str], ...]
    """(channel, address): email and/or sms."""
    consent_text: str
    topic: str | None
    thanks: str | None


def token_hash(token: str) -> str:
    """How a confirmation token is kept (its SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_submission(body: Mapping[str, Any], *, key: bytes, visitor: Visitor,
                     form: Mapping[str, Any] | None, settings: OnsiteSettings,
                     now_ms: int, default_country: str | None
                     ) -> tuple[dict[str, Any], Submission] | None:
    """The ticket and the checked submission; None for a bot's (honeypot) submission
    that must look accepted; BadRequest naming what is wrong otherwise (code
    `too_fast` for a form sent sooner than a person could have).

    `form` is the message's rendered form (None when the ticket's message has none).
    """
    ticket = read(key, body.get("ticket"), "show", now_ms=now_ms,
                  max_age_ms=settings.form_max_age_ms)
    if ticket is None or ticket.get("a") != visitor.anonymous_id or not ticket.get("m"):
        raise BadRequest("this form has expired; reload the page", code="expired_form")
    if body.get("hp"):
        return None
    if now_ms - int(ticket["t"]) < settings.form_min_ms:
        raise BadRequest("that was quick: wait a moment and send the form again",
                         code="too_fast")
    if form is None:
        raise BadRequest("this message has no form", code="no_form")
    if body.get("consent") is not True:
        raise BadRequest("tick the box to agree first", code="no_consent")
    addresses: list[tuple[str, str]] = []
    if form.get("email") is True:
        checked = check_email(body.get("email"))
        if checked.value is None:
            raise BadRequest(f"email: {checked.reason or 'not an email address'}",
                             code="invalid_email")
        addresses.append((EMAIL, checked.value))
    if form.get("phone") is True and body.get("phone") not in (None, ""):
        country = normalise_country(body.get("country")) or default_country
        checked = check_phone(body.get("phone"), country)
        if checked.value is None:
            raise BadRequest(f"phone: {checked.reason or 'not a phone number'}",
                             code="invalid_phone")
        addresses.append((SMS, checked.value))
    if not addresses:
        raise BadRequest("give a phone number", code="invalid_phone")
    consent = str(form.get("consent") or "")
    topic = form.get("topic") if isinstance(form.get("topic"), str) else None
    thanks = form.get("thanks") if isinstance(form.get("thanks"), str) else None
    return ticket, Submission(ticket.get("c"), ticket.get("r"), str(ticket["m"]),
                              tuple(addresses), consent, topic or None, thanks)


def _blocked(conn: Connection, channel: str, address: str) -> bool:
    kind = "email" if channel == EMAIL else "phone"
    if is_suppressed(conn, kind, address):
        return True
    return channel == EMAIL and suppression_list.suppression(conn, address) is not None


def record_submission(conn: Connection, submission: Submission, *, ticket: str,
                      visitor: Visitor, settings: OnsiteSettings, base_url: str,
                      page_url: str | None, now_ms: int) -> int:
    """The event and the queued confirmations (in the caller's write transaction);
    returns how many confirmations were queued."""
    queued = 0
    for channel, address in submission.addresses:
        if _blocked(conn, channel, address):
            continue
        if store.recent_signups(conn, channel, address, now_ms - 86_400_000) \
                >= settings.address_limit:
            continue
        store.add_signup(conn, channel=channel, address=address, topic=submission.topic,
                         campaign=submission.campaign, message=submission.message,
                         consent_text=submission.consent_text,
                         anonymous_id=visitor.anonymous_id, source_id=visitor.source_id,
                         base_url=base_url, now=now_ms,
                         expires_at=now_ms + settings.confirm_ttl_ms)
        queued += 1
    properties = {
        "campaign": submission.campaign, "arm": submission.arm,
        "message": submission.message, "topic": submission.topic, "channel": "onsite",
        "consent_text": submission.consent_text,
        "email": next((a for c, a in submission.addresses if c == EMAIL), None),
        "phone": next((a for c, a in submission.addresses if c == SMS), None),
    }
    append_events(conn, [onsite_event(
        FORM_SUBMITTED, ticket=ticket, properties=properties, user_id=visitor.user_id,
        anonymous_id=visitor.anonymous_id, source_id=visitor.source_id, now_ms=now_ms,
        page_url=page_url)])
    return queued


@dataclass(frozen=True)
class Confirmation:
    """What confirming a link did."""

    state: str
    """confirmed, already (spent before), expired or unknown."""
    linked: bool = False


def confirm(conn: Connection, token: Any, *, anonymous_id: str | None,
            now_ms: int) -> Confirmation:
    """Spend a confirmation link (once) and write "Sign-up Confirmed"; the browser that
    submitted the form is linked only when `anonymous_id` is its own."""
    if not isinstance(token, str) or not 16 <= len(token) <= 200:
        return Confirmation("unknown")
    with transaction(conn):
        signup = store.signup_by_token(conn, token_hash(token))
        if signup is None:
            return Confirmation("unknown")
        if signup.confirmed_at is not None:
            return Confirmation("already")
        if now_ms > signup.expires_at:
            return Confirmation("expired")
        store.confirm_signup(conn, signup.id, now_ms)
        linked = anonymous_id is not None and anonymous_id == signup.anonymous_id
        properties = {
            "channel": signup.channel, "address": signup.address, "topic": signup.topic,
            "campaign": signup.campaign, "message": signup.message,
            "consent_text": signup.consent_text, "signup_id": signup.id,
            "link_anonymous_id": signup.anonymous_id if linked else None,
        }
        append_events(conn, [own_event(
            name=SIGNUP_CONFIRMED, message_id=f"kanal-signup-{signup.id}-confirmed",
            origin="email" if signup.channel == EMAIL else "sms",
            properties={k: v for k, v in properties.items() if v is not None},
            # The submitting browser's id only when it is the one confirming: otherwise
            # it is no id of the person who confirmed.
            user_id=None, anonymous_id=signup.anonymous_id if linked
            else f"kanal-signup-{signup.id}",
            source_id=signup.source_id, now_ms=now_ms)])
    return Confirmation("confirmed", linked)
