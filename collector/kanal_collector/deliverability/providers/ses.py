"""Amazon SES bounce and complaint notifications, delivered by Amazon SNS over HTTPS.

    POST /hooks/ses     [deliverability.ses] topic_arns = ["arn:aws:sns:…:ses-feedback"]

SNS signs every message (docs: https://docs.aws.amazon.com/sns/latest/dg/
sns-verify-signature-of-message.html): the string to sign is `Name\\nvalue\\n` for
Message, MessageId, Subject (when present), Timestamp, TopicArn, Type of a Notification,
and Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type of a
(Un)SubscriptionConfirmation; SignatureVersion 1 is RSA with SHA1, 2 RSA with SHA256,
over the certificate at SigningCertURL. That URL is fetched only when it is
`https://sns.<region>.amazonaws.com/….pem` (or `.amazonaws.com.cn`), through the
outbound SSRF guard, and the certificate must be Amazon SNS's (subject CN
sns.amazonaws.com) and valid now. Only the configured topics are accepted.

A SubscriptionConfirmation of a configured topic is confirmed by fetching its
SubscribeURL, which must be an SNS host's `Action=ConfirmSubscription` URL
(`confirm_subscriptions = false` leaves that to you: the URL is logged).

The SES notification (docs: https://docs.aws.amazon.com/ses/latest/dg/
notification-contents.html) is the Message: `Bounce` (bounceType Permanent → hard;
Transient and Undetermined → soft) or `Complaint`, with the original Message-ID in
mail.commonHeaders / mail.headers (when SES includes the headers) and SES's own
mail.messageId.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from ...channels.netguard import BlockedAddress, guarded_session
from ..feedback import COMPLAINT, HARD, SOFT, Report
from .base import (
    BadPayload,
    Fetch,
    Incoming,
    Outcome,
    Provider,
    Refused,
    json_body,
    obj,
    text,
)

_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_CERT_CN = re.compile(r"^sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                 "Type")
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_MAX_CERT = 64 * 1024


def sns_url(url: Any, *, path_suffix: str | None = None) -> str:
    """`url` when it is https on an Amazon SNS host (no port, no credentials); else
    Refused. Nothing else is ever fetched."""
    if not isinstance(url, str):
        raise Refused("an SNS URL is missing")
    parts = urlsplit(url)
    if (parts.scheme != "https" or not _HOST.match(parts.hostname or "")
            or parts.port is not None or parts.username or parts.password
            or parts.netloc != parts.hostname):
        raise Refused(f"not an Amazon SNS URL: {url!r}")
    if path_suffix is not None and (not parts.path.endswith(path_suffix) or parts.query):
        raise Refused(f"not an SNS signing certificate URL: {url!r}")
    return url


def guarded_fetch(url: str) -> bytes:
    """GET through the SSRF guard: public addresses only, no redirects, 64 KiB at most."""
    session = guarded_session()
    try:
        response = session.get(url, timeout=10, allow_redirects=False, stream=True)
        if response.status_code != 200:
            raise Refused(f"{url} answered {response.status_code}")
        body = response.raw.read(_MAX_CERT + 1, decode_content=True)
    except (BlockedAddress, OSError) as exc:
        raise Refused(f"cannot fetch {url}: {exc}") from None
    finally:
        session.close()
    if len(body) > _MAX_CERT:
        raise Refused(f"{url} is larger than {_MAX_CERT} bytes")
    return bytes(body)


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signed for this message (its Type decides the fields)."""
    kind = message.get("Type")
    names = _NOTIFICATION if kind == "Notification" else _CONFIRMATION
    out = ""
    for name in names:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise Refused(f"the message has no {name}")
        out += f"{name}\n{value}\n"
    return out.encode("utf-8")


class SesProvider(Provider):
    """Amazon SES through an SNS HTTPS subscription."""

    name = "ses"
    docs = "https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html"

    def __init__(self, settings: Mapping[str, Any], fetch: Fetch | None = None) -> None:
        super().__init__(settings, fetch or guarded_fetch)
        topics = settings.get("topic_arns")
        if (not isinstance(topics, list) or not topics
                or not all(isinstance(t, str) and t.startswith("arn:") for t in topics)):
            raise ValueError("[deliverability.ses] topic_arns: the SNS topics to accept, like "
                             "[\"arn:aws:sns:eu-west-1:123456789012:ses-feedback\"]")
        self.topics = frozenset(topics)
        self.confirm = settings.get("confirm_subscriptions", True) is not False
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def _message(self, incoming: Incoming) -> dict[str, Any]:
        message = json_body(incoming.body)
        if not isinstance(message, dict):
            raise Refused("not an SNS message")
        return message

    def verify(self, incoming: Incoming) -> None:
        """Topic, certificate URL, certificate and signature; Refused on any doubt."""
        message = self._message(incoming)
        if message.get("Type") not in ("Notification", "SubscriptionConfirmation",
                                       "UnsubscribeConfirmation"):
            raise Refused(f"unknown SNS message type {message.get('Type')!r}")
        if message.get("TopicArn") not in self.topics:
            raise Refused(f"topic {message.get('TopicArn')!r} is not in topic_arns")
        algorithm = _HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise Refused(f"unknown SignatureVersion {message.get('SignatureVersion')!r}")
        url = sns_url(message.get("SigningCertURL"), path_suffix=".pem")
        cert = self._certificate(url, incoming.now)
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except binascii.Error:
            raise Refused("the signature is not base64") from None
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("the SNS certificate has no RSA key")
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Refused("the SNS signature does not match") from None

    def _certificate(self, url: str, now: float) -> x509.Certificate:
        with self._lock:
            cert = self._certs.get(url)
        if cert is None:
            assert self.fetch is not None
            try:
                cert = x509.load_pem_x509_certificate(self.fetch(url))
            except ValueError:
                raise Refused(f"{url} is not a PEM certificate") from None
            names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if not any(isinstance(n, str) and _CERT_CN.match(n) for n in names):
                raise Refused(f"the certificate at {url} is not Amazon SNS's ({names})")
            with self._lock:
                self._certs[url] = cert
        moment = datetime.fromtimestamp(now, UTC)
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise Refused(f"the certificate at {url} is not valid now")
        return cert

    def read(self, incoming: Incoming) -> Outcome:
        """Confirm a subscription, or read the SES notification in the message."""
        message = self._message(incoming)
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            url = sns_url(message.get("SubscribeURL"))
            query = parse_qs(urlsplit(url).query)
            if query.get("Action") != ["ConfirmSubscription"]:
                raise BadPayload(f"SubscribeURL is not a ConfirmSubscription URL: {url!r}")
            if not self.confirm:
                return Outcome(note=f"confirm the subscription of {message['TopicArn']} "
                                    f"by opening {url}")
            assert self.fetch is not None
            self.fetch(url)
            return Outcome(note=f"confirmed the subscription to {message['TopicArn']}")
        if kind == "UnsubscribeConfirmation":
            return Outcome(note=f"unsubscribed from {message['TopicArn']}")
        notification = json_body(str(message.get("Message", "")).encode())
        if not isinstance(notification, dict):
            raise BadPayload("the SNS Message is not an SES notification")
        return Outcome(reports=ses_reports(notification, str(message.get("MessageId"))))


def ses_reports(notification: Mapping[str, Any], fallback_id: str) -> list[Report]:
    """The bounces and complaints of one SES notification (deliveries say nothing new)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = obj(notification.get("mail"))
    ids = [text(mail.get("messageId"))]
    common = obj(mail.get("commonHeaders"))
    ids.append(text(common.get("messageId")))
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            ids.append(text(header.get("value")))
    message_ids = tuple(i for i in ids if i)
    out: list[Report] = []
    if kind == "Bounce":
        bounce = obj(notification.get("bounce"))
        verdict = HARD if bounce.get("bounceType") == "Permanent" else SOFT
        event_id = text(bounce.get("feedbackId")) or fallback_id
        for r in bounce.get("bouncedRecipients") or []:
            if isinstance(r, dict) and text(r.get("emailAddress")):
                detail = " ".join(str(x) for x in (
                    bounce.get("bounceType"), bounce.get("bounceSubType"), r.get("status"),
                    r.get("diagnosticCode")) if x)
                out.append(Report(verdict, r["emailAddress"], "ses", event_id, message_ids,
                                  detail=detail or None))
    elif kind == "Complaint":
        complaint = obj(notification.get("complaint"))
        event_id = text(complaint.get("feedbackId")) or fallback_id
        detail = text(complaint.get("complaintFeedbackType")) or "abuse"
        for r in complaint.get("complainedRecipients") or []:
            if isinstance(r, dict) and text(r.get("emailAddress")):
                out.append(Report(COMPLAINT, r["emailAddress"], "ses", event_id, message_ids,
                                  detail=detail))
    return out
