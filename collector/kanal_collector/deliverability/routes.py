"""Provider webhooks: POST /hooks/<provider> (ses, postmark, mailgun, sendgrid, brevo,
resend), each only when its `[deliverability.<provider>]` table is configured.

A request that isn't the provider's (a forged or missing signature, wrong credentials)
is answered 403 and nothing of it is read or stored. A verified one is recorded in one
transaction (feedback.record for every report in it) before the 200; a database that
can't take the write answers 503 so the provider sends it again (repeats are no-ops).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from ..errors import ConfigError, StorageError
from ..runtime import Runtime, get_runtime
from ..store.connection import DB_ERRORS
from ..store.db import transaction
from .feedback import record
from .providers import BadPayload, Incoming, Provider, Refused, build_providers
from .settings import Settings

log = logging.getLogger("kanal.deliverability")

deliverability_blueprint = Blueprint("deliverability", __name__)


@dataclass
class WebhookState:
    """The app's deliverability settings and its provider webhooks (tests may replace a
    provider's `fetch`)."""

    settings: Settings
    providers: dict[str, Provider]


def _setup(state: BlueprintSetupState) -> None:
    # Read [deliverability] when the app is built, so a bad config fails at start.
    runtime: Runtime = state.app.extensions["kanal"]
    settings = Settings.from_config(runtime.config)
    try:
        providers = build_providers(settings.providers)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    state.app.extensions["kanal.deliverability"] = WebhookState(settings, providers)


deliverability_blueprint.record_once(_setup)


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@deliverability_blueprint.post("/hooks/<provider>")
def webhook(provider: str) -> Response:
    """Verify one provider webhook and record its bounces and complaints."""
    state: WebhookState = current_app.extensions["kanal.deliverability"]
    hook = state.providers.get(provider)
    if hook is None:
        return _text(f"no webhook for {provider!r} is configured", 404)
    runtime = get_runtime()
    incoming = Incoming.of(request.get_data(cache=False), request.headers, runtime.clock.now())
    try:
        hook.verify(incoming)
    except Refused as exc:
        log.warning("%s webhook refused: %s", provider, exc)
        return _text("bad signature", 403)
    try:
        outcome = hook.read(incoming)
    except BadPayload as exc:
        log.warning("%s webhook: %s", provider, exc)
        return _text(str(exc), 400)
    except Refused as exc:  # a subscription URL that isn't Amazon's
        log.warning("%s webhook refused: %s", provider, exc)
        return _text("refused", 403)
    if outcome.note:
        log.info("%s webhook: %s", provider, outcome.note)
    now_ms = int(runtime.clock.now() * 1000)
    conn = runtime.db.conn()
    recorded = 0
    try:
        with transaction(conn):
            for report in outcome.reports:
                done = record(conn, report, state.settings, now_ms)
                recorded += int(done is not None and done.new)
    except DB_ERRORS as exc:
        raise StorageError(str(exc)) from exc  # 503: the provider sends it again
    if recorded:
        runtime.wake.set()
    return jsonify(received=len(outcome.reports), recorded=recorded)
