"""What people text back: Twilio's incoming message webhook of the `sms` channels.

    POST /hooks/twilio/<channel>/inbound    one message sent to the channel's number

Twilio signs the request like its status callbacks (callbacks.py); a bad or missing
signature is a 403 and nothing is read. A message that is only a keyword (any case,
surrounding spaces ignored; Twilio's `OptOutType` when Advanced Opt-Out sends it):

    STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT  → "Unsubscribed"
    START, YES, UNSTOP                                              → "Subscribed"
    HELP, INFO                                                      → "SMS Help Requested"

any other text → "SMS Received". The events are Kanal's own (origin `sms`), on the
person whose trusted phone number sent it, with `channel: sms` (every SMS channel),
`via: sms_keyword`, the keyword and Twilio's MessageSid; their message id is
`twilio-in:<MessageSid>`, so a repeated webhook adds nothing. Subscribed sets the SMS
opt-in marketing SMS needs (eligibility.py); Unsubscribed stops it. Twilio answers the
keywords itself (its standard replies): the answer here is an empty TwiML response.
A number no profile has is logged and answered the same (nothing is recorded: Kanal
never texts a number it doesn't know as a person's).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from ..contacts import normalise_phone
from ..errors import StorageError
from ..own_events import own_event
from ..runtime import get_runtime
from ..store import identities as identity_store
from ..store import profiles as profile_store
from ..store.connection import DB_ERRORS, Connection
from ..store.db import transaction
from ..store.events import append_events
from .callbacks import text_response, verified_hook

log = logging.getLogger("kanal.callbacks")

replies_blueprint = Blueprint("replies", __name__)

KEYWORDS: dict[str, tuple[str, ...]] = {
    "STOP": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
    "START": ("START", "YES", "UNSTOP"),
    "HELP": ("HELP", "INFO"),
}
"""Twilio's default opt-out, opt-in and help keywords (the whole message, any case)."""
EVENTS = {"STOP": "Unsubscribed", "START": "Subscribed", "HELP": "SMS Help Requested"}
SMS_RECEIVED = "SMS Received"
_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_MAX_BODY = 1600  # an SMS of 10 segments; longer text is cut in the event


def keyword_of(body: str | None, opt_out_type: str | None = None) -> str | None:
    """STOP, START or HELP for a message that is only such a keyword, else None."""
    given = (opt_out_type or "").strip().upper()
    if given in KEYWORDS:
        return given
    text = (body or "").strip().upper()
    for keyword, words in KEYWORDS.items():
        if text in words:
            return keyword
    return None


def record_reply(conn: Connection, *, channel: str, sid: str, sender: str,
                 body: str, keyword: str | None, now_ms: int) -> int | None:
    """Append the event of one incoming message; events added (0 for a repeat), or None
    when no profile has the sender's number."""
    phone = normalise_phone(sender)
    with transaction(conn):
        pid = None if phone is None else identity_store.identity_profile(conn, "phone", phone)
        source = profile_store.first_source(conn)
        if pid is None or source is None:
            return None
        idents = identity_store.profile_identities(conn, pid)
        user_id = next((v for k, v in idents if k == "user_id"), None)
        anonymous_id = next((v for k, v in idents if k == "anonymous_id"), None)
        if user_id is None and anonymous_id is None:
            anonymous_id = f"kanal-profile-{pid}"
        properties: dict[str, object] = {"channel": "sms", "sms_channel": channel,
                                         "provider": "twilio", "provider_id": sid,
                                         "profile_id": pid}
        if keyword is None:
            name = SMS_RECEIVED
            properties["body"] = body[:_MAX_BODY]
        else:
            name = EVENTS[keyword]
            properties.update(via="sms_keyword", keyword=keyword)
        return append_events(conn, [own_event(
            name=name, message_id=f"twilio-in:{sid}", origin="sms", properties=properties,
            user_id=user_id, anonymous_id=anonymous_id, source_id=source, now_ms=now_ms)])


@replies_blueprint.post("/hooks/twilio/<channel>/inbound")
def twilio_inbound(channel: str) -> Response:
    """Verify one incoming message and record it (STOP, START, HELP or a reply)."""
    hook = verified_hook(channel, inbound=True)
    if isinstance(hook, Response):
        return hook
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    sender = request.form.get("From") or ""
    if not sid or not sender:
        return text_response("MessageSid and From are required", 400)
    body = request.form.get("Body") or ""
    keyword = keyword_of(body, request.form.get("OptOutType"))
    runtime = get_runtime()
    try:
        added = record_reply(runtime.db.conn(), channel=channel, sid=sid, sender=sender,
                             body=body, keyword=keyword,
                             now_ms=int(runtime.clock.now() * 1000))
    except DB_ERRORS as exc:
        raise StorageError(str(exc)) from exc  # 503: Twilio retries
    if added is None:
        log.info("twilio message to channel %s from a number no profile has (%s)",
                 channel, keyword or "a reply")
    elif added:
        runtime.wake.set()
    return Response(_TWIML, status=200, mimetype="text/xml")
