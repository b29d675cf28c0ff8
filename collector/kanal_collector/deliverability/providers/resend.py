"""Resend webhooks, signed the Svix way (Standard Webhooks).

    POST /hooks/resend      [deliverability.resend] secret = { env = "RESEND_WEBHOOK_SECRET" }

Headers `svix-id`, `svix-timestamp` and `svix-signature`; the signature is base64
HMAC-SHA256, keyed with the base64-decoded part of the `whsec_…` secret, of
`{svix-id}.{svix-timestamp}.{body}`; the header holds one or more `v1,<signature>`
separated by spaces (a rotated secret); the timestamp must be within five minutes
(docs: https://resend.com/docs/webhooks/verify-webhooks-requests and
https://docs.svix.com/receiving/verifying-payloads/how-manual). Events (docs:
https://resend.com/docs/dashboard/webhooks/event-types): `email.bounced` (bounce.type
Permanent → hard, else soft) and `email.complained`; data.email_id is Resend's id.
"""

from __future__ import annotations

import base64
import binascii
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


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_…` secret (the prefix is optional); ValueError."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("[deliverability.resend] secret is not a whsec_… secret") from None


def svix_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class ResendProvider(Provider):
    """Resend's email.bounced and email.complained events."""

    name = "resend"
    docs = "https://resend.com/docs/webhooks/verify-webhooks-requests"

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        super().__init__(settings, fetch)
        self.key = secret_bytes(required_secret(settings, "secret", self.name))
        self.tolerance = float(settings.get("tolerance", 300))

    def verify(self, incoming: Incoming) -> None:
        """Any v1 signature of the header matches, and the timestamp is fresh."""
        msg_id = incoming.header("svix-id")
        timestamp = incoming.header("svix-timestamp")
        if not msg_id:
            raise Refused("no svix-id")
        fresh(timestamp, incoming.now, self.tolerance)
        expected = svix_signature(self.key, msg_id, timestamp, incoming.body).encode()
        ok = False
        for given in incoming.header("svix-signature").split():
            ok |= hmac.compare_digest(expected, given.encode())
        if not ok:
            raise Refused("the Resend (Svix) signature does not match")

    def read(self, incoming: Incoming) -> Outcome:
        """The report of a bounce or complaint event."""
        body = json_body(incoming.body)
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise BadPayload("a Resend webhook is an object with type and data")
        kind, data = body.get("type"), body["data"]
        to = data.get("to")
        addresses = [a for a in (to if isinstance(to, list) else [to]) if text(a)]
        ids = tuple(i for i in (text(data.get("email_id")),) if i)
        event_id = incoming.header("svix-id") or str(data.get("email_id"))
        if kind == "email.bounced":
            bounce = obj(data.get("bounce"))
            verdict = HARD if bounce.get("type") == "Permanent" else SOFT
            detail = " ".join(str(x) for x in (bounce.get("type"), bounce.get("subType"),
                                               bounce.get("message")) if x)
            return Outcome(reports=[Report(verdict, a, self.name, event_id, ids,
                                           detail=detail or None) for a in addresses])
        if kind == "email.complained":
            return Outcome(reports=[Report(COMPLAINT, a, self.name, event_id, ids,
                                           detail="complained") for a in addresses])
        return Outcome(note=f"ignored Resend {kind}")
