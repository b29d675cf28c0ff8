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

from .feedback import COMPLAINT, EMAIL_BOUNCED, EMAIL_MARKED_AS_SPAM, HARD, SOFT, Report, record
from .settings import Settings

__all__ = [
    "COMPLAINT",
    "EMAIL_BOUNCED",
    "EMAIL_MARKED_AS_SPAM",
    "HARD",
    "SOFT",
    "Report",
    "Settings",
    "record",
]
