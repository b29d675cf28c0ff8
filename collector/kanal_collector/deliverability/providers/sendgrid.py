"""SendGrid's Event Webhook, signed (ECDSA P-256 with SHA-256).

    POST /hooks/sendgrid    [deliverability.sendgrid] public_key = "MFkwEwYHKoZIzj0CAQYI…"

The signature (`X-Twilio-Email-Event-Webhook-Signature`, base64 DER) is over the
timestamp header (`X-Twilio-Email-Event-Webhook-Timestamp`) followed by the raw body,
checked with the verification key shown when the signed webhook is enabled (base64 DER,
or PEM) (docs: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/
getting-started-event-webhook-security-features). The body is a JSON array of events
(docs: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event):
`bounce` of type bounce → hard, of type blocked → soft; `spamreport` → complaint.
`smtp-id` is the message's Message-ID; `sg_message_id` SendGrid's id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
    required_secret,
    text,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key, base64 DER (as SendGrid shows it) or PEM; ValueError."""
    try:
        if "BEGIN PUBLIC KEY" in value:
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"[deliverability.sendgrid] public_key is not a public key "
                         f"({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("[deliverability.sendgrid] public_key is not an ECDSA key")
    return key


def valid_signature(key: ec.EllipticCurvePublicKey, body: bytes, signature: str,
                    timestamp: str) -> bool:
    """Whether `signature` is SendGrid's over timestamp + body."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature, ValueError):
        return False
    return True


class SendgridProvider(Provider):
    """SendGrid's signed Event Webhook: bounces and spam reports."""

    name = "sendgrid"
    docs = ("https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/"
            "getting-started-event-webhook-security-features")

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        super().__init__(settings, fetch)
        self.key = load_public_key(required_secret(settings, "public_key", self.name))
        self.tolerance = float(settings.get("tolerance", 86_400))

    def verify(self, incoming: Incoming) -> None:
        """ECDSA over timestamp + body, and the timestamp's age."""
        timestamp = incoming.header(TIMESTAMP_HEADER)
        fresh(timestamp, incoming.now, self.tolerance)
        if not valid_signature(self.key, incoming.body,
                               incoming.header(SIGNATURE_HEADER), timestamp):
            raise Refused("the SendGrid signature does not match")

    def read(self, incoming: Incoming) -> Outcome:
        """Every bounce and spam report of the batch."""
        events = json_body(incoming.body)
        if not isinstance(events, list):
            raise BadPayload("a SendGrid webhook is a JSON array of events")
        reports: list[Report] = []
        for e in events:
            if not isinstance(e, dict) or not text(e.get("email")):
                continue
            sg_id = text(e.get("sg_message_id"))
            ids = tuple(i for i in (text(e.get("smtp-id")), sg_id,
                                    sg_id.split(".")[0] if sg_id else None) if i)
            event_id = str(e.get("sg_event_id") or f"{sg_id}:{e.get('event')}")
            if e.get("event") == "bounce":
                verdict = SOFT if e.get("type") == "blocked" else HARD
                detail = " ".join(str(x) for x in (e.get("type"), e.get("status"),
                                                   e.get("reason")) if x)
                reports.append(Report(verdict, e["email"], self.name, event_id, ids,
                                      detail=detail or None))
            elif e.get("event") == "spamreport":
                reports.append(Report(COMPLAINT, e["email"], self.name, event_id, ids,
                                      detail="spamreport"))
        return Outcome(reports=reports)
