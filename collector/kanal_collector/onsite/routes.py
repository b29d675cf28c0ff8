"""The on-site routes the snippet (and people following a confirmation link) call.

    GET  /onsite/site/<public key>.json   the site document: is anything on, the push key
                                          (cacheable: `[onsite] site_max_age`)
    POST /onsite/pull                     this page view's messages (private, no-store)
    POST /onsite/event                    shown / clicked / dismissed / held out
    POST /onsite/form                     a sign-up form
    POST /onsite/push                     a web push subscription (or its end)
    GET  /onsite/confirm?t=TOKEN          a confirmation page with a button …
    POST /onsite/confirm                  … that confirms (the button, or the snippet on
                                          the shop's confirm page)

The snippet's bodies are JSON sent as text/plain (no CORS preflight) with `k` (the
source's public key), `a` (anonymousId), `u` and `x` (userId and userHash, on pages of
signed-in customers). Every JSON answer allows any origin and no credentials: nothing
here reads cookies.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from ..channels.webpush import BadSubscription, parse_subscription, subscription_identity
from ..errors import BadRequest, Forbidden, NotFound, RateLimited
from ..ingest.enrich import client_ip, describe_user_agent
from ..ingest.ratelimit import RateLimiter, retry_after_seconds
from ..messages.catalog import Catalog, messages_dir
from ..messages.controls import Controls
from ..messages.dispatcher import link_policy
from ..messages.eligibility import Policy
from ..own_events import own_event
from ..products.settings import ProductSettings
from ..products.templates import ProductFunctions
from ..profiles.identity import default_country
from ..profiles.own_identities import WEBPUSH_SUBSCRIBED, WEBPUSH_UNSUBSCRIBED
from ..runtime import Runtime, get_runtime
from ..store import identities as identity_store
from ..store import onsite as store
from ..store.db import transaction
from ..tracking import pages
from ..tracking.locale import Words, words
from .access import Visitor, browser_owned, visitor
from .catalog import Campaigns, onsite_dir
from .events import ACTIONS, HELD_OUT, onsite_event
from .forms import check_submission, confirm, record_submission
from .pull import Puller, page_of
from .settings import OnsiteSettings
from .signing import read, signing_key

log = logging.getLogger("kanal.onsite")

onsite_blueprint = Blueprint("onsite", __name__)

MAX_BODY = 64 * 1024
TICKET_AGE_MS = 86_400_000
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST",
         "Access-Control-Allow-Headers": "Content-Type"}
_PRIVATE = {"Cache-Control": "private, no-store"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow", "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}


@dataclass
class Onsite:
    """What the on-site routes share: settings, the puller and the form limiter."""

    settings: OnsiteSettings
    puller: Puller
    form_limiter: RateLimiter
    default_country: str | None
    _key: bytes | None = None

    def key(self, runtime: Runtime) -> bytes:
        """The signing key of tickets (made on first use)."""
        if self._key is None:
            self._key = signing_key(runtime.db.conn())
        return self._key


def build_onsite(app: Any) -> Onsite:
    """The app's on-site state, from its config (ConfigError for bad settings)."""
    runtime: Runtime = app.extensions["kanal"]
    config = runtime.config
    settings = OnsiteSettings.from_config(config)
    products = ProductSettings.from_config(config)

    def functions(conn: Any, profile_id: int | None, traits: Any, data: Any, now_ms: int,
                  outbox_id: int | None, message: str | None,
                  journey: str | None) -> ProductFunctions:
        return ProductFunctions(conn, products, profile_id=profile_id, traits=traits,
                                data=data, now_ms=now_ms, outbox_id=outbox_id,
                                message=message, journey=journey)

    campaigns = Campaigns(directory=onsite_dir(config))
    catalog = Catalog(directory=messages_dir(config))
    puller = Puller(campaigns, catalog, functions, default_ttl_ms=settings.queue_ttl_ms,
                    policy=Policy.from_config(config),
                    controls=Controls.from_config(config), link_policy=link_policy(config))
    puller.refresh()
    rate = settings.form_rate_limit / 60
    return Onsite(settings, puller, RateLimiter(rate, max(1.0, settings.form_rate_limit)),
                  default_country(config))


def _setup(state: BlueprintSetupState) -> None:
    if "kanal.onsite" not in state.app.extensions:
        state.app.extensions["kanal.onsite"] = build_onsite(state.app)


onsite_blueprint.record_once(_setup)


@onsite_blueprint.after_request
def _cors(response: Response) -> Response:
    # Any shop page may call these; no credentials are allowed (nothing reads cookies).
    response.headers.update(_CORS)
    return response


def _onsite() -> Onsite:
    state: Onsite = current_app.extensions["kanal.onsite"]
    return state


def _now_ms(runtime: Runtime) -> int:
    return int(runtime.clock.now() * 1000)


def _body() -> dict[str, Any]:
    data = request.get_data(cache=False)
    if len(data) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY // 1024} KB", code="too_large")
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        raise BadRequest("the body must be JSON", code="invalid") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid")
    return body


def _visitor(runtime: Runtime, body: dict[str, Any]) -> Visitor:
    return visitor(runtime.db.conn(), runtime.keys, body)


def _client() -> str | None:
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                     get_runtime().trusted_proxies)


def _limit(limiter: RateLimiter, who: Any) -> None:
    wait = limiter.check(who)
    if wait:
        raise RateLimited("too many requests; slow down", retry_after=retry_after_seconds(wait))


def _json(value: Any, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(value)
    response.headers.update(headers or _PRIVATE)
    return response


@onsite_blueprint.get("/onsite/site/<key>.json")
def site_document(key: str) -> Response:
    """Whether the snippet needs the on-site code at all, and the web push key."""
    runtime = get_runtime()
    info = runtime.keys.get(key)
    if info is None or info.kind == "admin":
        raise NotFound("no such site", code="unknown_key")
    onsite = _onsite()
    onsite.puller.refresh(force=True)
    conn = runtime.db.conn()
    on = onsite.puller.active() or store.any_queued(conn, _now_ms(runtime))
    push = onsite.settings.webpush
    document = {"on": on, "push": {"key": push.public_key,
                                   "sw": onsite.settings.service_worker} if push else None}
    return _json(document, {"Cache-Control":
                            f"public, max-age={onsite.settings.site_max_age}"})


@onsite_blueprint.post("/onsite/pull")
def pull() -> Response:
    """This page view's messages, answered from the profile the browser may see."""
    runtime = get_runtime()
    body = _body()
    _limit(runtime.limiter, ("onsite", _client()))
    who = _visitor(runtime, body)
    onsite = _onsite()
    onsite.puller.refresh()
    ua = request.headers.get("User-Agent") or ""
    device = str(describe_user_agent(ua[:1000])["device"]) if ua else "other"
    page = page_of(body.get("url"), device, body.get("l"))
    messages, wrote = onsite.puller.pull(runtime.db.conn(), onsite.key(runtime), who, page,
                                         _now_ms(runtime))
    if wrote:
        runtime.wake.set()
    return _json({"messages": messages})


@onsite_blueprint.post("/onsite/event")
def event() -> Response:
    """What the browser did with a message the pull gave it (the ticket says which)."""
    runtime = get_runtime()
    body = _body()
    _limit(runtime.limiter, ("onsite", _client()))
    who = _visitor(runtime, body)
    now_ms = _now_ms(runtime)
    ticket = read(_onsite().key(runtime), body.get("ticket"), "show", now_ms=now_ms,
                  max_age_ms=TICKET_AGE_MS)
    name = ACTIONS.get(str(body.get("action")))
    if ticket is None or ticket.get("a") != who.anonymous_id or name is None:
        raise BadRequest("not a message this browser was shown", code="bad_ticket")
    if (name == HELD_OUT) != (ticket.get("r") == "holdout"):
        raise BadRequest(f"{body.get('action')} doesn't fit this message", code="bad_action")
    properties = {"campaign": ticket.get("c"), "arm": ticket.get("r"),
                  "message": ticket.get("m"), "outbox_id": ticket.get("o"),
                  "journey": ticket.get("j"), "step": ticket.get("st"), "channel": "onsite"}
    url = body.get("url") if isinstance(body.get("url"), str) else None
    runtime.writer.write([onsite_event(
        name, ticket=str(body["ticket"]), properties=properties,
        user_id=ticket.get("u"), anonymous_id=who.anonymous_id, source_id=who.source_id,
        now_ms=now_ms, page_url=url)])
    return _json({"ok": True})


@onsite_blueprint.post("/onsite/form")
def form() -> Response:
    """A sign-up form: checked, recorded with its consent text, confirmation queued."""
    runtime = get_runtime()
    onsite = _onsite()
    body = _body()
    _limit(onsite.form_limiter, _client())
    who = _visitor(runtime, body)
    now_ms = _now_ms(runtime)
    key = onsite.key(runtime)
    conn = runtime.db.conn()
    ticket = read(key, body.get("ticket"), "show", now_ms=now_ms,
                  max_age_ms=onsite.settings.form_max_age_ms)
    shown = onsite.puller.form_of(conn, ticket.get("m") if ticket else None,
                                  body.get("l"), now_ms)
    checked = check_submission(body, key=key, visitor=who, form=shown,
                               settings=onsite.settings, now_ms=now_ms,
                               default_country=onsite.default_country)
    if checked is None:  # a bot filled the honeypot: it learns nothing
        return _json({"ok": True, "thanks": None})
    _, submission = checked
    base = onsite.settings.public_url or request.host_url
    url = body.get("url") if isinstance(body.get("url"), str) else None
    with transaction(conn):
        record_submission(conn, submission, ticket=str(body["ticket"]), visitor=who,
                          settings=onsite.settings, base_url=base, page_url=url,
                          now_ms=now_ms)
    runtime.wake.set()
    return _json({"ok": True, "thanks": submission.thanks})


@onsite_blueprint.post("/onsite/push")
def push() -> Response:
    """A web push subscription made by an explicit click (or its end), as an identity
    of the person: a verified user's, or the browser's own anonymous profile's."""
    runtime = get_runtime()
    onsite = _onsite()
    settings = onsite.settings.webpush
    if settings is None:
        raise NotFound("web push is not set up here", code="no_push")
    body = _body()
    _limit(runtime.limiter, ("onsite", _client()))
    who = _visitor(runtime, body)
    try:
        subscription = parse_subscription(body.get("subscription"),
                                          hosts=settings.push_hosts)
    except BadSubscription as exc:
        raise BadRequest(f"subscription: {exc}", code="bad_subscription") from None
    conn = runtime.db.conn()
    if not who.verified and who.anonymous_id:
        found = identity_store.identity_profile(conn, "anonymous_id", who.anonymous_id)
        if found is not None and not browser_owned(conn, found):
            raise Forbidden("this browser belongs to a signed-in customer: the page must "
                            "identify them with userHash first", code="verify_first")
    elif not who.verified:
        raise BadRequest("an anonymousId (a) is required", code="invalid")
    value = subscription_identity(subscription)
    name = WEBPUSH_UNSUBSCRIBED if body.get("unsubscribe") is True else WEBPUSH_SUBSCRIBED
    now_ms = _now_ms(runtime)
    digest = hashlib.sha256(f"{name}\0{value}\0{now_ms}".encode()).hexdigest()[:32]
    runtime.writer.write([own_event(
        name=name, message_id=f"kanal-webpush-{digest}",
        origin="web", properties={"subscription": value, "channel": settings.channel},
        user_id=who.user_id, anonymous_id=who.anonymous_id, source_id=who.source_id,
        now_ms=now_ms)])
    return _json({"ok": True})


@onsite_blueprint.get("/onsite/confirm")
def confirm_page() -> Response:
    """A confirmation link opened: a page with the button (a link scanner fetching the
    URL confirms nothing)."""
    token = request.args.get("t", "")
    say = _words()
    body = (f'<p>{say.signup("confirm_text")}</p>'
            '<form method="post" action="/onsite/confirm">'
            f'<input type="hidden" name="t" value="{_attr(token)}">'
            f'<button type="submit">{say.signup("confirm_button")}</button></form>')
    return Response(pages.page(say.signup("confirm_title"), body, say),
                    mimetype="text/html", headers=_PAGE_HEADERS)


@onsite_blueprint.post("/onsite/confirm")
def confirm_post() -> Response:
    """Confirm: from the page's button (a form post), or from the snippet on the shop's
    own confirm page (JSON: that browser is linked when it is the one that signed up)."""
    runtime = get_runtime()
    now_ms = _now_ms(runtime)
    conn = runtime.db.conn()
    if request.mimetype == "application/x-www-form-urlencoded":
        done = confirm(conn, request.form.get("t"), anonymous_id=None, now_ms=now_ms)
        runtime.wake.set()
        say = _words()
        title_key, text_key = _CONFIRM_PAGES[done.state]
        title = say.text(title_key) if title_key == "not_found_title" else say.signup(title_key)
        text = say.signup(text_key)
        return Response(pages.page(title, f"<p>{text}</p>", say), mimetype="text/html",
                        status=404 if done.state == "unknown" else 200,
                        headers=_PAGE_HEADERS)
    body = _body()
    who = _visitor(runtime, body)
    done = confirm(conn, body.get("t"), anonymous_id=who.anonymous_id, now_ms=now_ms)
    runtime.wake.set()
    return _json({"state": done.state, "same_browser": done.linked})


_CONFIRM_PAGES = {
    "confirmed": ("thanks_title", "confirmed_text"),
    "already": ("thanks_title", "already_text"),
    "expired": ("expired_title", "expired_text"),
    "unknown": ("not_found_title", "not_found_text"),
}
"""The strings (tracking/locales/: [signup], and [pages] not_found_title, which the
unsubscribe pages share) of the page after a confirmation: title, text."""


def _words() -> Words:
    """The confirmation page's language: the browser's (the link may be opened anywhere,
    so the person isn't known until it is confirmed)."""
    return words(None, request.headers.get("Accept-Language"))


def _attr(text: str) -> str:
    from html import escape

    return escape(text[:300], quote=True)

