"""Provider delivery callbacks: Twilio's status callbacks of the `sms` channels.

    POST /hooks/twilio/<channel>    one MessageStatus update of one message (MessageSid)

Twilio signs each callback (X-Twilio-Signature: base64 HMAC-SHA1 under the account's
auth token of the URL it called followed by every POST parameter, sorted by name, name
and value concatenated). A bad or missing signature is a 403 and nothing is read. The
URL is the one Twilio was given: the channel's `status_callback`, else the tracking
base URL or `[server] public_url` with the route's path, and only without either of
those the request's own URL (the Host header is the client's to choose).

`delivered` becomes "SMS Delivered"; `undelivered` and `failed` become "SMS Failed"
with Twilio's ErrorCode; the other statuses (queued, sending, sent, …) say nothing the
dispatcher's send-time event didn't. Events are Kanal's own (key_kind "kanal", origin
"sms"), attributed like delivery.py's to the outbox row's profile, message and journey,
with the message id `twilio:<sid>:<status>`: a repeated callback adds nothing.
A SID no outbox row of the channel was sent under is logged and answered 200.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from ..channels.sms import CALLBACK_PATH, INBOUND_PATH, callback_url
from ..channels.tables import configured_channels
from ..config import Config, resolve_secret
from ..errors import ConfigError, StorageError
from ..runtime import Runtime, get_runtime
from ..store import identities as identity_store
from ..store import outbox as outbox_store
from ..store import profiles as profile_store
from ..store.connection import DB_ERRORS, Connection
from ..store.db import transaction
from ..store.events import EventRow, append_events
from ..tracking.settings import TrackingSettings
from .delivery import EVENT_NAMES, SMS_DELIVERED, outbox_event

log = logging.getLogger("kanal.callbacks")

callbacks_blueprint = Blueprint("callbacks", __name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
SMS_FAILED = EVENT_NAMES["sms"][1]
TWILIO_EVENTS = {"delivered": SMS_DELIVERED, "undelivered": SMS_FAILED,
                 "failed": SMS_FAILED}
"""MessageStatus → event; other statuses are acknowledged and not recorded."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class TwilioHook:
    """What verifies one sms channel's callbacks."""

    auth_token: str
    url: str | None
    """The URL Twilio signs; None: the request's own URL (no public URL configured)."""
    inbound_url: str | None = None
    """The URL Twilio signs for incoming messages (replies.py); None: the request's."""


def twilio_hooks(config: Config) -> dict[str, TwilioHook]:
    """One TwilioHook per enabled `[channels.NAME]` table of type sms."""
    base = TrackingSettings.from_config(config).base_url
    hooks: dict[str, TwilioHook] = {}
    for name, table in configured_channels(config).items():
        if str(table.get("type", name)) != "sms" or table.get("enabled", True) is False:
            continue
        try:
            token = resolve_secret(table.get("auth_token"))
            url = callback_url(table.get("status_callback"), name)
            inbound = table.get("inbound_url")
            if inbound is not None and (not isinstance(inbound, str)
                                        or not inbound.startswith(("http://", "https://"))):
                raise ValueError(f"inbound_url must be an http(s) URL, not {inbound!r}")
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"[channels.{name}]: {exc}") from None
        if not isinstance(token, str) or not token:
            raise ConfigError(f"[channels.{name}]: auth_token is required")
        if url is None and base:
            url = base + CALLBACK_PATH.format(channel=name)
        if inbound is None and base:
            inbound = base + INBOUND_PATH.format(channel=name)
        hooks[name] = TwilioHook(token, url, inbound)
    return hooks


def _setup(state: BlueprintSetupState) -> None:
    # Read the channel tables when the app is built, so a bad config fails at start.
    runtime: Runtime = state.app.extensions["kanal"]
    state.app.extensions["kanal.callbacks"] = twilio_hooks(runtime.config)


callbacks_blueprint.record_once(_setup)


# -- the signature ------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's X-Twilio-Signature for a POST of `params` (name, value pairs) to `url`."""
    # Sorted by name, then value for a repeated name (as Twilio's helper libraries do).
    data = url + "".join(name + value for name, value in sorted(set(params)))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL without and with its port: Twilio signs either, as its helpers accept."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.username or parts.password:
        return [url]  # credentials in the URL: used exactly as configured
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    bare = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port}")) if port else bare
    return [url, *{bare, with_port} - {url}]


def valid_twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]],
                           signature: str | None) -> bool:
    """Whether `signature` is Twilio's for this request (compared in constant time)."""
    if not signature:
        return False
    pairs = list(params)
    given = signature.encode()
    ok = False
    for candidate in _port_variants(url):
        expected = twilio_signature(auth_token, candidate, pairs).encode()
        ok |= hmac.compare_digest(expected, given)
    return ok


# -- the events ---------------------------------------------------------------------------


def status_event(conn: Connection, row: outbox_store.OutboxRow, *, name: str,
                 sid: str, status: str, detail: Mapping[str, Any], source_id: int,
                 now_ms: int) -> EventRow:
    """The event of one Twilio status of an outbox row, attributed like delivery.py's."""
    current = profile_store.merged_into(conn, row.profile_id) or row.profile_id
    properties: dict[str, Any] = {
        "outbox_id": row.id, "message": row.message, "journey": row.journey,
        "step": row.step, "channel": row.channel, "kind": row.kind,
        "profile_id": current, "provider": "twilio", "provider_id": sid,
        "provider_status": status, **detail,
    }
    return outbox_event(row, name=name, message_id=f"twilio:{sid}:{status}", origin="sms",
                        properties=properties,
                        identities=identity_store.profile_identities(conn, current),
                        source_id=source_id, now_ms=now_ms)


def record_status(conn: Connection, *, channel: str, sid: str, status: str,
                  detail: Mapping[str, Any], now_ms: int) -> int | None:
    """Append the event of a status in one write transaction; events added (0 for a
    repeat), or None when no outbox row of `channel` was sent under `sid`."""
    name = TWILIO_EVENTS[status]
    with transaction(conn):
        row = outbox_store.by_provider_id(conn, channel, sid)
        if row is None:
            return None
        source = profile_store.first_source(conn)
        if source is None:
            return 0
        return append_events(conn, [status_event(
            conn, row, name=name, sid=sid, status=status, detail=detail, source_id=source,
            now_ms=now_ms)])


# -- the route ----------------------------------------------------------------------------


def text_response(body: str, status: int) -> Response:
    """A plain-text answer to a provider."""
    return Response(body, status=status, mimetype="text/plain")


_text = text_response


def verified_hook(channel: str, *, inbound: bool = False) -> TwilioHook | Response:
    """The channel's hook when the request carries Twilio's signature for it, else the
    answer to give (404 for an unknown channel, 403 for a bad signature)."""
    hooks: dict[str, TwilioHook] = current_app.extensions["kanal.callbacks"]
    hook = hooks.get(channel)
    if hook is None:
        return _text("no such sms channel", 404)
    params = list(request.form.items(multi=True))
    url = (hook.inbound_url if inbound else hook.url) or request.url
    if not valid_twilio_signature(hook.auth_token, url, params,
                                  request.headers.get(SIGNATURE_HEADER)):
        log.warning("twilio request for channel %s refused: bad signature for %s",
                    channel, url)
        return _text("bad signature", 403)
    return hook


@callbacks_blueprint.post("/hooks/twilio/<channel>")
def twilio_status(channel: str) -> Response:
    """Verify one Twilio status callback and record delivered / failed statuses."""
    hook = verified_hook(channel)
    if isinstance(hook, Response):
        return hook
    sid = request.form.get("MessageSid") or request.form.get("SmsSid") or ""
    status = request.form.get("MessageStatus") or request.form.get("SmsStatus") or ""
    if not sid:
        return _text("MessageSid is missing", 400)
    if status not in TWILIO_EVENTS:
        return _text("", 200)
    detail: dict[str, Any] = {}
    if status != "delivered":
        detail = {"error_code": request.form.get("ErrorCode") or None,
                  "error_message": request.form.get("ErrorMessage") or None}
    runtime = get_runtime()
    try:
        added = record_status(runtime.db.conn(), channel=channel, sid=sid, status=status,
                              detail=detail, now_ms=int(runtime.clock.now() * 1000))
    except DB_ERRORS as exc:
        raise StorageError(str(exc)) from exc  # 503: Twilio may call again
    if added is None:
        log.info("twilio callback for channel %s: no outbox row was sent as %s (%s)",
                 channel, sid, status)
    elif added:
        runtime.wake.set()
    return _text("", 200)
