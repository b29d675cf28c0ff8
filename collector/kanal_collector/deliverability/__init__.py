"""Deliverability: bounces, complaints, suppression, email authentication, reports.

    settings.py    the [deliverability] table: bounces, VERP, provider webhooks
    feedback.py    what a bounce or complaint does (events, suppression, unsubscribe)
    providers/     webhooks of SES (SNS), Postmark, Mailgun, SendGrid, Brevo, Resend
    routes.py      POST /hooks/<provider>
    verp.py        per-row bounce addresses (bounces+<token>@bounce.shop.example)
    dsn.py         reading delivery status notifications (RFC 3464) and ARF reports
    receiver.py    the SMTP/LMTP endpoint that takes them (aiosmtpd)
    hook.py        before_send: Feedback-ID, Precedence: bulk, the VERP envelope sender
    suppression.py the suppression list: add, remove, import and export CSV
    dnscheck.py    `kanal email check DOMAIN`: SPF, DKIM and DMARC records
    report.py      bounce and complaint rates per day, channel, journey and domain

Send-time rules (warm-up ramps, recipient-domain throttles, sunset) are in
messages/sending.py; DKIM signing is in channels/dkim.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .feedback import COMPLAINT, EMAIL_BOUNCED, EMAIL_MARKED_AS_SPAM, HARD, SOFT, Report, record
    from .settings import Settings

_lazy = lazy_exports(__name__, {
    "COMPLAINT": ".feedback",
    "EMAIL_BOUNCED": ".feedback",
    "EMAIL_MARKED_AS_SPAM": ".feedback",
    "HARD": ".feedback",
    "SOFT": ".feedback",
    "Report": ".feedback",
    "record": ".feedback",
    "Settings": ".settings",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)

__all__ = [
    "COMPLAINT",
    "EMAIL_BOUNCED",
    "EMAIL_MARKED_AS_SPAM",
    "HARD",
    "Report",
    "SOFT",
    "Settings",
    "record",
]
