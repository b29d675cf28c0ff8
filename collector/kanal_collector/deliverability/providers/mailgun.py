"""Mailgun webhooks (JSON): `failed` (permanent → hard, temporary → soft), `complained`.

    POST /hooks/mailgun     [deliverability.mailgun] signing_key = { env = … }

Each body carries `signature: {timestamp, token, signature}`; the signature is the hex
HMAC-SHA256, keyed with the account's HTTP webhook signing key, of timestamp followed
by token (docs: https://documentation.mailgun.com/docs/mailgun/user-manual/events/
webhooks#securing-webhooks). The timestamp must be within `tolerance` seconds of now
(default one day: Mailgun retries a failed delivery for hours). `event-data` holds the
event (docs: https://documentation.mailgun.com/docs/mailgun/user-manual/events/
event-types): its id, recipient, severity, delivery-status and the message's
Message-ID header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from ..feedback import COMPLAINT, HARD, SOFT, Report
from .base import (
    BadPayload,
    Fetch,
    Incoming,
    Outcome,
    Provider,
    Refused,
    fresh,
    json_body,
    obj,
    required_secret,
    text,
)


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature of a webhook: hex HMAC-SHA256 of timestamp + token."""
    return hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(),
                    hashlib.sha256).hexdigest()


class MailgunProvider(Provider):
    """Mailgun's failed and complained webhooks."""

    name = "mailgun"
    docs = "https://documentation.mailgun.com/docs/mailgun/user-manual/events/webhooks"

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        super().__init__(settings, fetch)
        self.key = required_secret(settings, "signing_key", self.name)
        self.tolerance = float(settings.get("tolerance", 86_400))

    def verify(self, incoming: Incoming) -> None:
        """The HMAC of timestamp and token, and the timestamp's age."""
        body = json_body(incoming.body) if incoming.body else None
        sig = body.get("signature") if isinstance(body, dict) else None
        if not isinstance(sig, dict):
            raise Refused("no signature object")
        timestamp, token, given = (str(sig.get(k, "")) for k in ("timestamp", "token",
                                                                  "signature"))
        fresh(timestamp, incoming.now, self.tolerance)
        expected = mailgun_signature(self.key, timestamp, token)
        if not token or not hmac.compare_digest(expected.encode(), given.encode()):
            raise Refused("the Mailgun signature does not match")

    def read(self, incoming: Incoming) -> Outcome:
        """The report of the event, if it is a bounce or a complaint."""
        body = json_body(incoming.body)
        data = body.get("event-data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise BadPayload("no event-data")
        event, address = data.get("event"), text(data.get("recipient"))
        headers = obj(obj(data.get("message")).get("headers"))
        ids = tuple(i for i in (text(headers.get("message-id")),) if i)
        event_id = str(data.get("id") or "")
        if not address or not event_id:
            return Outcome(note=f"ignored Mailgun {event} without recipient or id")
        if event == "failed":
            status = obj(data.get("delivery-status"))
            verdict = HARD if data.get("severity") == "permanent" else SOFT
            detail = " ".join(str(x) for x in (data.get("severity"), data.get("reason"),
                                               status.get("code"), status.get("message")
                                               or status.get("description")) if x)
            return Outcome(reports=[Report(verdict, address, self.name, event_id, ids,
                                           detail=detail or None)])
        if event == "complained":
            return Outcome(reports=[Report(COMPLAINT, address, self.name, event_id, ids,
                                           detail="complained")])
        return Outcome(note=f"ignored Mailgun {event}")
