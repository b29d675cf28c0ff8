"""The `email` channel: SMTP with STARTTLS or implicit TLS, AUTH, HTML + text parts.

Settings (`[channels.email]`):
    host                      SMTP server (required)
    port                      default 587 for starttls, 465 for tls, 25 for none
    tls                       "starttls" (default), "tls" (implicit, SMTPS) or "none"
                              (local development only: no password is sent in clear
                              text to anything but a loopback address)
    username, password        AUTH credentials, e.g. password = { env = "SMTP_PASSWORD" }
    from                      From header, e.g. "Shop <news@shop.example>" (required)
    reply_to                  Reply-To header (optional)
    envelope_from             MAIL FROM address for bounces (default: the From address)
    message_id_domain         right-hand side of Message-IDs (default: From's domain)
    ca_file                   trust this CA bundle (a self-signed development server)
    local_hostname            EHLO name (default: this machine's FQDN)
    timeout                   seconds (default 30)
    messages_per_connection   reconnect after this many messages (default 100)
    dkim_selector, dkim_private_key_file | dkim_private_key, dkim_domain
                              sign every message with DKIM (dkim.py)

A message's `metadata["envelope_from"]` (a VERP bounce address, set by the
deliverability hook) replaces envelope_from for that message.

One connection stays open across sends; a pooled connection the server closed is
replaced once before anything was sent. Reply codes 4xx raise TransientError and 5xx
PermanentError (a bounce at send time); either message starts with "SMTP <code>".
"""

from __future__ import annotations

import hashlib
import ipaddress
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses
from typing import Any, ClassVar

from ._http import setting_float
from .base import Channel, OutgoingMessage, PermanentError, SendResult, TransientError
from .dkim import signer_from_settings
from .headers import header_problem

_PORTS = {"starttls": 587, "tls": 465, "none": 25}
# Lines may be up to RFC 5322's 998 characters: with the default 78, the email package
# folds a long List-Unsubscribe URL into encoded words, which mail clients won't parse.
_POLICY = SMTP_POLICY.clone(max_line_length=998)
_UTF8_POLICY = _POLICY.clone(utf8=True)
# Headers the channel writes itself; a message may not replace them.
_OWN_HEADERS = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to",
                "mime-version", "content-type", "content-transfer-encoding", "sender"}
def _has_break(value: str) -> bool:
    return header_problem(value) is not None


def _check(value: str, what: str) -> None:
    """PermanentError when `value` may not go into a header (headers.py)."""
    problem = header_problem(value)
    if problem is not None:
        raise PermanentError(f"{what} {problem}: {value[:200]!r}")


def _address(value: str, what: str) -> str:
    """One bare addr-spec (local@domain), or PermanentError: no lists, no display names."""
    _check(value, what)
    parsed = getaddresses([value])
    if (len(parsed) != 1 or parsed[0][0] or parsed[0][1] != value.strip()
            or value.count("@") != 1 or any(c in value for c in " ,;<>\"()\\")):
        raise PermanentError(f"{what} is not a single email address: {value!r}")
    local, domain = value.strip().rsplit("@", 1)
    if not local or not domain or domain.startswith(".") or ".." in domain:
        raise PermanentError(f"{what} is not a single email address: {value!r}")
    return value.strip()


def message_id(idempotency_key: str, domain: str) -> str:
    """A Message-ID derived from the outbox row's key: a retry carries the same one."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _reply_error(stage: str, code: int, reply: bytes | str) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    text = " ".join(text.split())
    if 500 <= code < 600:
        return PermanentError(f"SMTP {code} at {stage} (bounced at send time): {text}")
    return TransientError(f"SMTP {code} at {stage}: {text}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailChannel(Channel):
    """Send email through an SMTP server (one kept-open connection, reconnecting)."""

    name: ClassVar[str] = "email"
    kind: ClassVar[str] = "email"
    recipient_identity: ClassVar[str | None] = "email"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        host = settings.get("host")
        if not isinstance(host, str) or not host:
            raise ValueError("host is required")
        self.host = host
        self.tls = str(settings.get("tls", "starttls")).lower()
        if self.tls not in _PORTS:
            raise ValueError(f"tls must be starttls, tls or none, not {self.tls!r}")
        self.port = int(settings.get("port", _PORTS[self.tls]))
        self.username = settings.get("username") or None
        self.password = settings.get("password") or ""
        if self.username and self.tls == "none" and not _is_loopback(host):
            raise ValueError("tls = \"none\" would send the password in clear text; "
                             "use starttls or tls")
        sender = settings.get("from")
        if not isinstance(sender, str) or not sender:
            raise ValueError("from is required (e.g. \"Shop <news@shop.example>\")")
        if _has_break(sender):
            raise ValueError("from contains a line break")
        try:
            display, spec = _display_and_spec(sender)
            self.sender = Address(display_name=display, addr_spec=spec)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"from is not an address: {sender!r} ({exc})") from None
        self.reply_to = settings.get("reply_to") or None
        if self.reply_to is not None and _has_break(str(self.reply_to)):
            raise ValueError("reply_to contains a line break")
        envelope = settings.get("envelope_from") or self.sender.addr_spec
        try:
            self.envelope_from = _address(str(envelope), "envelope_from")
        except PermanentError as exc:
            raise ValueError(str(exc)) from None
        self.domain = str(settings.get("message_id_domain") or self.sender.domain)
        self.timeout = setting_float(settings, "timeout", 30.0)
        self.per_connection = int(settings.get("messages_per_connection", 100))
        if self.per_connection < 1:
            raise ValueError("messages_per_connection must be at least 1")
        self.dkim = signer_from_settings(settings, self.sender.domain)
        self.ca_file = settings.get("ca_file") or None
        self.local_hostname = settings.get("local_hostname") or None
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._lock = threading.RLock()  # close() may run inside send()

    # -- building -------------------------------------------------------------------

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The MIME message for `message`, or PermanentError (never half-built)."""
        recipient = _address(message.recipient, "recipient")
        content = message.content
        subject = content.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise PermanentError("the email content has no subject")
        # Every value written into a header is checked, after decoding encoded words:
        # the email package would decode them, and some Pythons write a decoded CR LF
        # out as a real line break (headers.py).
        _check(subject, "subject")
        for key, value in message.headers.items():
            if (_has_break(key) or ":" in key or not key.isascii()
                    or not key.isprintable() or " " in key):
                raise PermanentError(f"header {key!r} contains a line break or is invalid")
            _check(str(value), f"header {key!r}")
            if key.lower() in _OWN_HEADERS:
                raise PermanentError(f"header {key!r} is set by the email channel")
        text, html = content.get("text"), content.get("html")
        if not text and not html:
            raise PermanentError("the email content has neither text nor html")
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = self.sender
        msg["To"] = recipient
        if self.reply_to:
            msg["Reply-To"] = str(self.reply_to)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        mid = message_id(message.idempotency_key, self.domain)
        _check(mid, "Message-ID")
        msg["Message-ID"] = mid
        if text:
            msg.set_content(str(text))
            if html:
                msg.add_alternative(str(html), subtype="html")
        else:
            msg.set_content(str(html), subtype="html")
        # After the content: setting it drops every Content-* header (Content-Language).
        for key, value in message.headers.items():
            msg[key] = str(value)
        return msg

    # -- connection -----------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        if self.local_hostname is None:
            self.local_hostname = socket.getfqdn()
        context = ssl.create_default_context(cafile=self.ca_file)
        try:
            # Connecting in the constructor: smtplib only keeps the host name for TLS
            # certificate checks (and SNI) when it is given there.
            if self.tls == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, local_hostname=self.local_hostname,
                    timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname,
                                    timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:
            raise TransientError(f"SMTP {exc.smtp_code} while connecting to "
                                 f"{self.host}: {exc.smtp_error!r}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot connect to SMTP server {self.host}:{self.port}: "
                                 f"{exc}") from None
        try:
            smtp.ehlo()
            if self.tls == "starttls":
                if not smtp.has_extn("starttls"):
                    # Sending in clear text anyway would make a downgrade attack trivial.
                    raise TransientError(f"SMTP server {self.host} does not offer STARTTLS")
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                self._login(smtp)
        except smtplib.SMTPAuthenticationError as exc:
            smtp.close()
            # The credentials are the operator's to fix, not the recipient's fault.
            raise TransientError(f"SMTP {exc.smtp_code} at AUTH: login refused") from None
        except smtplib.SMTPResponseException as exc:
            smtp.close()
            raise TransientError(f"SMTP {exc.smtp_code} while connecting to "
                                 f"{self.host}: {exc.smtp_error!r}") from None
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise TransientError(f"cannot connect to SMTP server {self.host}:{self.port}: "
                                 f"{exc}") from None
        except BaseException:
            smtp.close()
            raise
        self._sent_on_connection = 0
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        """AUTH with one mechanism: smtplib's login() tries the next after a refusal,
        which only repeats a wrong password (and trips some servers' state machines)."""
        smtp.user, smtp.password = str(self.username), str(self.password)
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        for mechanism, method in (("PLAIN", smtp.auth_plain), ("LOGIN", smtp.auth_login),
                                  ("CRAM-MD5", smtp.auth_cram_md5)):
            if mechanism in offered:
                smtp.auth(mechanism, method)
                return
        raise smtplib.SMTPException(f"no supported AUTH mechanism among {offered}")

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def _reset(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _refused(self, smtp: smtplib.SMTP, code: int) -> None:
        """After a refusal: 421 means the server is closing; otherwise RSET and go on."""
        if code == 421:
            self._drop()
        else:
            self._reset(smtp)

    # -- sending --------------------------------------------------------------------

    def send(self, message: OutgoingMessage) -> SendResult:
        """Build and send one email; raise TransientError / PermanentError."""
        msg = self.build(message)
        envelope = message.metadata.get("envelope_from")
        envelope = self.envelope_from if not envelope else _address(str(envelope),
                                                                   "envelope_from")
        international = not (message.recipient.isascii() and envelope.isascii())
        data = msg.as_bytes(policy=_UTF8_POLICY if international else _POLICY)
        if self.dkim is not None:
            data = self.dkim.sign(data)
        with self._lock:
            return self._transaction(message.recipient.strip(), data, international,
                                     str(msg["Message-ID"]), envelope)

    def _transaction(self, recipient: str, data: bytes, international: bool,
                     mid: str, envelope: str) -> SendResult:
        options: list[str] = []
        for attempt in (0, 1):
            fresh = self._smtp is None
            if fresh:
                self._smtp = self._connect()
            smtp = self._smtp
            assert smtp is not None  # for mypy: set just above
            if international:
                if not smtp.has_extn("smtputf8"):
                    raise PermanentError("the recipient needs SMTPUTF8, which the SMTP "
                                         "server does not offer")
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            try:
                code, reply = smtp.mail(envelope, options)
            except (OSError, smtplib.SMTPServerDisconnected) as exc:
                self._drop()
                if fresh or attempt:
                    raise TransientError(f"SMTP connection lost at MAIL FROM: {exc}") from None
                continue  # the server closed our idle connection; nothing was sent yet
            if code != 250:
                self._refused(smtp, code)
                raise _reply_error("MAIL FROM", code, reply)
            break
        assert self._smtp is not None
        smtp = self._smtp
        try:
            code, reply = smtp.rcpt(recipient, [])
            if code not in (250, 251):
                self._refused(smtp, code)
                raise _reply_error("RCPT TO", code, reply)
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:
            self._reset(smtp)
            raise _reply_error("DATA", exc.smtp_code, exc.smtp_error) from None
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            raise TransientError(f"SMTP connection lost while sending: {exc}") from None
        if code != 250:
            self._refused(smtp, code)
            raise _reply_error("end of DATA", code, reply)
        self._sent_on_connection += 1
        if self._sent_on_connection >= self.per_connection:
            self.close()
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return SendResult(provider_id=mid, detail={"smtp": f"{code} {' '.join(text.split())}"})

    def close(self) -> None:
        """QUIT and close the connection (a later send reconnects)."""
        with self._lock:
            if self._smtp is not None:
                try:
                    self._smtp.quit()
                except (OSError, smtplib.SMTPException):
                    pass
                finally:
                    self._drop()


def _display_and_spec(value: str) -> tuple[str, str]:
    parsed = getaddresses([value])
    if len(parsed) != 1 or not parsed[0][1] or "@" not in parsed[0][1]:
        raise ValueError("expected one address")
    display, spec = parsed[0]
    _address(spec, "from")
    return display, spec
