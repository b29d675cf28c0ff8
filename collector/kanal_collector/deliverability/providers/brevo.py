"""Brevo (formerly Sendinblue) transactional email webhooks.

    POST /hooks/brevo       [deliverability.brevo] username = "…"  password = { env = … }
                            or token = { env = … }   (Authorization: Bearer)

Brevo doesn't sign webhooks; it sends the credentials configured with the webhook:
Basic credentials in the URL, or a bearer token (docs: https://developers.brevo.com/
docs/secured-webhooks), checked here in constant time. A body is one event, or a list
of them for batched webhooks (docs: https://developers.brevo.com/docs/
transactional-webhooks): `hard_bounce` and `invalid_email` → hard, `soft_bounce` →
soft, `spam` → complaint; `message-id` is the message's Message-ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..feedback import COMPLAINT, HARD, SOFT, Report
from .base import BadPayload, Fetch, Incoming, Outcome, Provider, check_basic_or_bearer, json_body
from .base import text as field

_EVENTS = {"hard_bounce": HARD, "invalid_email": HARD, "soft_bounce": SOFT, "spam": COMPLAINT}


class BrevoProvider(Provider):
    """Brevo's hard_bounce, soft_bounce, invalid_email and spam events."""

    name = "brevo"
    docs = "https://developers.brevo.com/docs/secured-webhooks"

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        super().__init__(settings, fetch)
        self.username = field(settings.get("username"))
        self.password = field(settings.get("password"))
        self.token = field(settings.get("token"))
        if not self.token and not (self.username and self.password):
            raise ValueError("[deliverability.brevo] set username and password, or token")

    def verify(self, incoming: Incoming) -> None:
        """Basic credentials or the bearer token."""
        check_basic_or_bearer(incoming, username=self.username, password=self.password,
                              token=self.token)

    def read(self, incoming: Incoming) -> Outcome:
        """Every bounce and complaint of the body."""
        body = json_body(incoming.body)
        events = body if isinstance(body, list) else [body]
        if not all(isinstance(e, dict) for e in events):
            raise BadPayload("a Brevo webhook is an event object or a list of them")
        reports = []
        for e in events:
            kind = _EVENTS.get(str(e.get("event")))
            address = field(e.get("email"))
            if kind is None or address is None:
                continue
            mid = field(e.get("message-id"))
            event_id = f"{e.get('event')}:{mid or e.get('id')}:{e.get('ts_event')}"
            detail = " ".join(str(x) for x in (e.get("event"), e.get("reason")) if x)
            reports.append(Report(kind, address, self.name, event_id,
                                  (mid,) if mid else (), detail=detail or None))
        return Outcome(reports=reports)
