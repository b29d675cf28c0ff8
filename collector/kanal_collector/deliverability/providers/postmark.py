"""Postmark bounce and spam-complaint webhooks.

    POST /hooks/postmark    [deliverability.postmark] username = "…"  password = { env = … }

Postmark doesn't sign its webhooks; it sends the HTTP Basic credentials written in the
webhook URL (`https://user:password@kanal.shop.example/hooks/postmark`), which are
checked here in constant time (docs: https://postmarkapp.com/developer/webhooks/
webhooks-overview, "Protecting your webhook"). Payloads (docs: https://postmarkapp.com/
developer/webhooks/bounce-webhook and …/spam-complaint-webhook): RecordType `Bounce`
with Type HardBounce or BadEmailAddress → hard, SoftBounce, Transient or DnsError →
soft (others, such as AutoResponder, are not bounces); `SpamComplaint` → complaint;
a `SubscriptionChange` with SuppressionReason SpamComplaint (broadcast streams) too.
MessageID is Postmark's id of the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..feedback import COMPLAINT, HARD, SOFT, Report
from .base import (
    BadPayload,
    Fetch,
    Incoming,
    Outcome,
    Provider,
    check_basic_or_bearer,
    json_body,
    required_secret,
    text,
)

_BOUNCES = {"HardBounce": HARD, "BadEmailAddress": HARD, "SoftBounce": SOFT,
            "Transient": SOFT, "DnsError": SOFT}


class PostmarkProvider(Provider):
    """Postmark's Bounce, SpamComplaint and SubscriptionChange webhooks."""

    name = "postmark"
    docs = "https://postmarkapp.com/developer/webhooks/webhooks-overview"

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        super().__init__(settings, fetch)
        self.username = required_secret(settings, "username", self.name)
        self.password = required_secret(settings, "password", self.name)

    def verify(self, incoming: Incoming) -> None:
        """The Basic credentials of the webhook URL."""
        check_basic_or_bearer(incoming, username=self.username, password=self.password,
                              token=None)

    def read(self, incoming: Incoming) -> Outcome:
        """One record a request."""
        record = json_body(incoming.body)
        if not isinstance(record, dict):
            raise BadPayload("a Postmark webhook is one JSON object")
        kind = record.get("RecordType")
        address = text(record.get("Email")) or text(record.get("Recipient"))
        ids = tuple(i for i in (text(record.get("MessageID")),) if i)
        event_id = str(record.get("ID") or record.get("MessageID") or "")
        if kind == "Bounce" and record.get("Type") in _BOUNCES and address:
            detail = " ".join(str(x) for x in (record.get("Type"), record.get("Description"),
                                               record.get("Details")) if x)
            return Outcome(reports=[Report(_BOUNCES[record["Type"]], address, self.name,
                                           event_id, ids, detail=detail or None)])
        complaint = kind == "SpamComplaint" or (
            kind == "SubscriptionChange" and record.get("SuppressionReason") == "SpamComplaint")
        if complaint and address:
            return Outcome(reports=[Report(COMPLAINT, address, self.name,
                                           event_id or f"{address}:{record.get('ChangedAt')}",
                                           ids, detail="SpamComplaint")])
        return Outcome(note=f"ignored Postmark {kind} {record.get('Type') or ''}".strip())
