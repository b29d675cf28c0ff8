"""The tracking routes: /c (click), /o (open pixel), /u (unsubscribe), /p (preferences).

Every answer is built here rather than through the app's JSON error handler: people
see these in a browser or a mail client. Tokens are checked before anything else; a
bad one gets a 404 page (a GIF for the pixel) and nothing is recorded.
"""

from __future__ import annotations

import base64
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request, url_for
from flask.blueprints import BlueprintSetupState

from ..errors import StorageError
from ..profiles.state import computed
from ..runtime import Runtime, get_runtime
from ..store import profiles as profile_store
from ..store import tracking as store
from ..store.events import EventRow
from . import pages, tokens
from .bots import bot_reason
from .events import EMAIL_LINK_CLICKED, EMAIL_OPENED, SUBSCRIBED, UNSUBSCRIBED, email_event
from .keys import KeyCache
from .locale import Words, words
from .prefs import choices
from .settings import TrackingSettings

log = logging.getLogger("kanal.tracking")

EMAIL = "email"
"""The channel kind an unsubscribe from an email applies to: every email channel."""

tracking_blueprint = Blueprint("tracking", __name__)

# A 1x1 transparent GIF (43 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}


@dataclass
class _State:
    settings: TrackingSettings
    keys: KeyCache


def _setup(state: BlueprintSetupState) -> None:
    # Read [tracking] when the app is built, so a bad config fails at start.
    runtime: Runtime = state.app.extensions["kanal"]
    settings = TrackingSettings.from_config(runtime.config)
    state.app.extensions["kanal.tracking"] = _State(settings, KeyCache(settings.keys))


tracking_blueprint.record_once(_setup)


def tracking_settings(app: Flask) -> TrackingSettings:
    """The app's `[tracking]` settings."""
    state: _State = app.extensions["kanal.tracking"]
    return state.settings


def _verify(token: str, purpose: int) -> tokens.Token | None:
    runtime = get_runtime()
    state: _State = current_app.extensions["kanal.tracking"]
    return state.keys.read(runtime.db.conn(), token, purpose, _now_ms(runtime))


def _now_ms(runtime: Runtime) -> int:
    return int(runtime.clock.now() * 1000)


def _page(html: str, status: int = 200) -> Response:
    return Response(html, status=status, mimetype="text/html", headers=_PAGE_HEADERS)


def _words(profile_id: int | None = None) -> Words:
    """The page's language: the person's, else the browser's, else English."""
    language = None
    if profile_id is not None:
        conn = get_runtime().db.conn()
        state = profile_store.load_states(conn, [profile_id]).get(profile_id)
        language = computed(state).get("language") if state is not None else None
    return words(language, request.headers.get("Accept-Language"))


def _not_found(status: int = 404) -> Response:
    return _page(pages.not_found(_words()), status)


def _write(rows: list[EventRow | None]) -> None:
    """Append through the collector's group-commit writer (it wakes the processor)."""
    kept = [r for r in rows if r is not None]
    if kept:
        get_runtime().writer.write(kept)


def _send_properties(send: store.SendInfo) -> dict[str, Any]:
    return {"outbox_id": send.outbox_id, "message": send.message, "journey": send.journey,
            "channel": send.channel, "topic": send.topic}


def _flag(props: dict[str, Any], reason: str | None) -> dict[str, Any]:
    if reason:
        props["bot"] = True
        props["bot_reason"] = reason
    return props


# merge_slashes=False: Werkzeug would otherwise answer "/c//x" with a redirect.
@tracking_blueprint.get("/c/<token>", merge_slashes=False)
def click(token: str) -> Response:
    """Redirect to the URL recorded for this link at send time, and record the click."""
    found = None
    parsed = _verify(token, tokens.CLICK)
    runtime = get_runtime()
    conn = runtime.db.conn()
    if parsed is not None and parsed.index is not None:
        found = store.link_target(conn, parsed.id, parsed.index)
    if found is None or parsed is None:
        return _not_found()
    send, url = found
    now_ms = _now_ms(runtime)
    ua = request.headers.get("User-Agent")
    reason = bot_reason(ua, method=request.method, seconds_since_send=(now_ms - send.sent_at)
                        / 1000, min_click_seconds=tracking_settings(current_app).bot_click_seconds)
    props = _flag({**_send_properties(send), "link_url": url, "link_index": parsed.index},
                  reason)
    try:
        _write([email_event(conn, EMAIL_LINK_CLICKED, profile_id=send.profile_id,
                            properties=props, now_ms=now_ms, user_agent=ua)])
    except StorageError as exc:
        # The person still gets where they were going; only the statistic is lost.
        log.error("click on outbox row %s not recorded: %s", send.outbox_id, exc)
    response = Response(status=302, headers={"Location": url, **_PAGE_HEADERS})
    return response


@tracking_blueprint.get("/o/", defaults={"name": ""}, merge_slashes=False)
@tracking_blueprint.get("/o/<path:name>", merge_slashes=False)
def open_pixel(name: str) -> Response:
    """Always the 1x1 GIF; an open is recorded when the token is good."""
    try:
        _record_open(name.removesuffix(".gif"))
    except Exception:  # a pixel never fails: mail clients show a broken image
        log.exception("open not recorded")
    return Response(PIXEL, status=200, mimetype="image/gif", headers=_NO_CACHE)


def _record_open(token: str) -> None:
    parsed = _verify(token, tokens.OPEN)
    if parsed is None:
        return
    runtime = get_runtime()
    conn = runtime.db.conn()
    send = store.send_info(conn, parsed.id)
    if send is None:
        return
    ua = request.headers.get("User-Agent")
    reason = bot_reason(ua, method=request.method, opening=True)
    _write([email_event(conn, EMAIL_OPENED, profile_id=send.profile_id,
                        properties=_flag(_send_properties(send), reason),
                        now_ms=_now_ms(runtime), user_agent=ua)])


def _unsubscribe_send(token: str) -> store.SendInfo | None:
    parsed = _verify(token, tokens.UNSUBSCRIBE)
    if parsed is None:
        return None
    return store.send_info(get_runtime().db.conn(), parsed.id)


def _preferences_link(profile_id: int) -> str:
    runtime = get_runtime()
    keys = current_app.extensions["kanal.tracking"].keys.keys(runtime.db.conn(),
                                                              _now_ms(runtime))
    return url_for("tracking.preferences",
                   token=tokens.make_token(keys[0], tokens.PREFERENCES, profile_id))


@tracking_blueprint.get("/u/<token>", merge_slashes=False)
def unsubscribe_page(token: str) -> Response:
    """A confirmation page with the buttons; a GET changes nothing (link scanners GET)."""
    send = _unsubscribe_send(token)
    if send is None:
        return _not_found()
    pid = _current(send.profile_id)
    return _page(pages.confirm_unsubscribe(
        url_for("tracking.unsubscribe", token=token), EMAIL, send.topic,
        _preferences_link(pid), _words(pid)))


@tracking_blueprint.post("/u/<token>", merge_slashes=False)
def unsubscribe(token: str) -> Response:
    """RFC 8058 one-click, or a button of the page; 200, no cookies, no redirect.

    The one-click POST of a mail client (`List-Unsubscribe=One-Click`) unsubscribes from
    all marketing email (every channel of kind email), or, with `[tracking] one_click =
    "topic"`, from the email's topic only. The page's buttons say which they mean
    (`scope=all` or `scope=topic`). Transactional email is never affected."""
    send = _unsubscribe_send(token)
    if send is None:
        return _not_found()
    runtime = get_runtime()
    scope = request.form.get("scope")
    one_click = scope not in ("all", "topic")
    if one_click:
        scope = tracking_settings(current_app).one_click
    topic = send.topic if scope == "topic" else None
    props = {**_send_properties(send), "channel": EMAIL, "topic": topic,
             "sent_on": send.channel, "via": "one_click" if one_click else "page"}
    # A failed write is a 503 (the app's handler): never say "unsubscribed" unless it is.
    _write([email_event(runtime.db.conn(), UNSUBSCRIBED, profile_id=send.profile_id,
                        properties=props, now_ms=_now_ms(runtime),
                        user_agent=request.headers.get("User-Agent"))])
    pid = _current(send.profile_id)
    return _page(pages.unsubscribed(EMAIL, topic, _preferences_link(pid), _words(pid)))


def _current(profile_id: int) -> int:
    """The profile a send's person is now (merges are followed)."""
    return profile_store.merged_into(get_runtime().db.conn(), profile_id) or profile_id


def _preferences_profile(token: str) -> int | None:
    parsed = _verify(token, tokens.PREFERENCES)
    if parsed is None:
        return None
    conn = get_runtime().db.conn()
    pid = profile_store.merged_into(conn, parsed.id) or parsed.id
    return pid if profile_store.profile_row(conn, pid) is not None else None


@tracking_blueprint.route("/p/<token>", methods=["GET", "POST"], merge_slashes=False)
def preferences(token: str) -> Response:
    """Checkboxes per channel and topic; a POST with the signed token saves them."""
    pid = _preferences_profile(token)
    if pid is None:
        return _not_found()
    runtime = get_runtime()
    conn = runtime.db.conn()
    items = choices(conn, tracking_settings(current_app), pid)
    saved = False
    if request.method == "POST":
        # The token is the capability (no login, no cookie): the form must carry it too,
        # so a cross-site form can't post without already holding it.
        if not hmac.compare_digest(request.form.get("token", "").encode(), token.encode()):
            return _not_found(403)
        wanted = set(request.form.getlist("sub"))
        now_ms = _now_ms(runtime)
        rows = []
        updated = []
        for item in items:
            subscribed = item.key in wanted
            if subscribed != item.subscribed:
                rows.append(email_event(
                    conn, SUBSCRIBED if subscribed else UNSUBSCRIBED, profile_id=pid,
                    properties={"channel": item.channel, "topic": item.topic,
                                "via": "preferences"},
                    now_ms=now_ms, user_agent=request.headers.get("User-Agent")))
            updated.append(type(item)(item.channel, item.topic, subscribed))
        _write(rows)
        items, saved = updated, True
    return _page(pages.preferences(url_for("tracking.preferences", token=token), token,
                                   items, saved, _words(pid)))
