"""Provider webhooks that report bounces and complaints, one module each.

    ses        Amazon SES through Amazon SNS (RSA signatures over a fetched certificate)
    postmark   HTTP Basic credentials in the webhook URL
    mailgun    HMAC-SHA256 of timestamp + token
    sendgrid   ECDSA (P-256, SHA-256) of timestamp + body
    brevo      HTTP Basic credentials or a bearer token
    resend     Svix: HMAC-SHA256 of id.timestamp.body
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import BadPayload, Fetch, Incoming, Outcome, Provider, Refused, WebhookError
from .brevo import BrevoProvider
from .mailgun import MailgunProvider
from .postmark import PostmarkProvider
from .resend import ResendProvider
from .sendgrid import SendgridProvider
from .ses import SesProvider

PROVIDER_CLASSES: dict[str, type[Provider]] = {
    cls.name: cls for cls in (SesProvider, PostmarkProvider, MailgunProvider,
                              SendgridProvider, BrevoProvider, ResendProvider)}


def build_providers(tables: Mapping[str, Mapping[str, Any]],
                    fetch: Fetch | None = None) -> dict[str, Provider]:
    """One Provider per configured `[deliverability.NAME]` table; ValueError naming it."""
    return {name: PROVIDER_CLASSES[name](table, fetch) for name, table in tables.items()}


__all__ = [
    "PROVIDER_CLASSES",
    "BadPayload",
    "Fetch",
    "Incoming",
    "Outcome",
    "Provider",
    "Refused",
    "WebhookError",
    "build_providers",
]
