"""Reading the mail that comes back to a bounce address.

- A delivery status notification (RFC 3464): `multipart/report;
  report-type=delivery-status` with a `message/delivery-status` part, whose blocks after
  the first are one per recipient (Action, Status, Final-Recipient, Diagnostic-Code).
  `Action: failed` is a bounce (`delayed`, `delivered`, `relayed` and `expanded` are
  not): hard when the status says the address is bad (5.1.x: no such mailbox or domain;
  5.2.1: disabled; 5.4.4: no route to the domain) or when a generic 5.0.0 comes with an
  SMTP 550/551/553 diagnostic; soft for every other failure (mailbox full, policy or
  spam rejections, 4.x.x): those may pass later, and repeated ones add up (feedback.py).
- An abuse report (ARF, RFC 5965): `multipart/report; report-type=feedback-report`,
  from a mailbox provider's feedback loop: a complaint.
- Anything else (auto-replies, "out of office", spam to the bounce address) is no report.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message

from .feedback import COMPLAINT, HARD, SOFT

_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_HARD_550 = re.compile(r"\b55[013]\b")


@dataclass(frozen=True)
class Finding:
    """One recipient's outcome in a report."""

    kind: str
    """hard, soft or complaint."""
    recipient: str | None
    """Final-Recipient (DSN) or Original-Rcpt-To (ARF), when given."""
    detail: str


@dataclass(frozen=True)
class Parsed:
    """What a message to the bounce address said."""

    kind: str
    """"dsn", "arf" or "other"."""
    message_id: str | None
    """The report's own Message-ID (with the recipient: the dedupe key)."""
    findings: tuple[Finding, ...]


def classify(action: str, status: str, diagnostic: str = "") -> str | None:
    """hard, soft, or None (not a bounce) for one recipient of a DSN."""
    if action.strip().lower() != "failed":
        return None
    match = _STATUS.match(status.strip().split(" ")[0])
    if match is None:
        return SOFT
    klass, subject, detail = match.groups()
    if klass != "5":
        return SOFT
    if subject == "1" or (subject, detail) in (("2", "1"), ("4", "4")):
        return HARD
    if (subject, detail) == ("0", "0") and _HARD_550.search(diagnostic):
        return HARD
    return SOFT


def _address(value: str | None) -> str | None:
    """`rfc822; ann@example.com` → ann@example.com."""
    if not value:
        return None
    _, _, addr = str(value).partition(";")
    addr = (addr or str(value)).strip().strip("<>").strip()
    return addr or None


def parse(data: bytes) -> Parsed:
    """Read a message received at a bounce address (never raises on odd input)."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    message_id = msg.get("Message-ID")
    mid = str(message_id).strip() if message_id else None
    if msg.get_content_type() != "multipart/report":
        return Parsed("other", mid, ())
    report_type = str(msg.get_param("report-type", "")).lower()
    if report_type == "delivery-status":
        return Parsed("dsn", mid, tuple(_dsn_findings(msg)))
    if report_type == "feedback-report":
        return Parsed("arf", mid, tuple(_arf_findings(msg)))
    return Parsed("other", mid, ())


def _dsn_findings(msg: Message) -> list[Finding]:
    out: list[Finding] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the message, not a recipient
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", ""))
            status = str(block.get("Status", ""))
            diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
            kind = classify(action, status, diagnostic)
            if kind is None:
                continue
            recipient = _address(block.get("Final-Recipient")) or _address(
                block.get("Original-Recipient"))
            detail = " ".join(x for x in (status.strip(), diagnostic) if x)
            out.append(Finding(kind, recipient, detail or action))
    return out


def _arf_findings(msg: Message) -> list[Finding]:
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        fields: Message | None = None
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            fields = payload[0]
        elif isinstance(payload, str):
            fields = email.message_from_string(payload, policy=email.policy.compat32)
        if fields is None:
            continue
        feedback_type = str(fields.get("Feedback-Type", "abuse")).strip().lower()
        if feedback_type not in ("abuse", "fraud", "virus", "other"):
            return []  # not-spam, auth-failure: no complaint about the recipient
        recipient = _address(fields.get("Original-Rcpt-To"))
        return [Finding(COMPLAINT, recipient, f"feedback-type {feedback_type}")]
    return []
