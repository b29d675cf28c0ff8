"""The email channel against a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kanal_collector.channels.base import OutgoingMessage, PermanentError, TransientError
from kanal_collector.channels.headers import decode_encoded_words, header_problem
from kanal_collector.channels.smtp import EmailChannel, message_id


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: Any

    def parsed(self) -> email.message.EmailMessage:
        msg = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


@dataclass
class Handler:
    """Records messages; recipients starting with bounce/grey get 550/450."""

    received: list[Received] = field(default_factory=list)
    servers: list[SMTP] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.startswith("bounce"):
            return f"550 5.1.1 <{address}>: user unknown"
        if address.startswith("grey"):
            return "450 4.2.0 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if b"Subject: spam" in content:
            return "554 5.7.1 message refused as spam"
        self.servers.append(server)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                      content, session.peer))
        return "250 2.0.0 queued as 42"


class _Controller(Controller):
    """aiosmtpd's Controller on an ephemeral port (port 0)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Server:
    controller: _Controller
    handler: Handler

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def drop_connections(self) -> None:
        """Close every session's socket from the server side (an idle timeout)."""
        async def close() -> None:
            for server in self.handler.servers:
                if server.transport is not None:
                    server.transport.close()
            for _ in range(3):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), self.controller.loop).result(5)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kanal test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("certs")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def _server_context(certs: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certs)
    return context


def _authenticator(handler: Handler) -> Callable[..., AuthResult]:
    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        handler.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)
    return check


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start aiosmtpd servers on 127.0.0.1; all stopped at the end of the test."""
    started: list[_Controller] = []

    def start(**kwargs: Any) -> Server:
        handler = Handler()
        if kwargs.pop("auth", False):
            kwargs["authenticator"] = _authenticator(handler)
        controller = _Controller(handler, hostname="127.0.0.1", port=0, **kwargs)
        controller.start()
        started.append(controller)
        return Server(controller, handler)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def smtp(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture
def make_channel() -> Iterator[Callable[..., EmailChannel]]:
    made: list[EmailChannel] = []

    def make(port: int, **settings: Any) -> EmailChannel:
        channel = EmailChannel({"host": "127.0.0.1", "port": port, "tls": "none",
                                "from": "Kanal Shop <news@shop.example>",
                                "local_hostname": "kanal.test", **settings})
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


def message(recipient: str = "ann@example.com", key: str = "outbox-1", *,
            headers: dict[str, str] | None = None, **content: Any) -> OutgoingMessage:
    content = {"subject": "Your cart misses you", "text": "Come back!",
               "html": "<p>Come <b>back</b>!</p>", **content}
    return OutgoingMessage(outbox_id=1, idempotency_key=key, recipient=recipient,
                           content=content, headers=headers or {})


UNSUBSCRIBE = ("<https://t.shop.example/u/" + "x" * 150 + ">, "
               "<mailto:unsubscribe@shop.example?subject=unsubscribe>")


def test_sends_html_and_text_with_headers(smtp: Server, make_channel: Callable[..., EmailChannel]
                                          ) -> None:
    channel = make_channel(smtp.port, reply_to="help@shop.example",
                           envelope_from="bounces@shop.example")
    result = channel.send(message(headers={
        "List-Unsubscribe": UNSUBSCRIBE,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
    [got] = smtp.handler.received
    assert got.mail_from == "bounces@shop.example"
    assert got.rcpt_tos == ["ann@example.com"]
    msg = got.parsed()
    assert msg["From"] == "Kanal Shop <news@shop.example>"
    assert msg["To"] == "ann@example.com"
    assert msg["Reply-To"] == "help@shop.example"
    assert msg["Subject"] == "Your cart misses you"
    assert msg["Message-ID"] == message_id("outbox-1", "shop.example")
    assert result.provider_id == msg["Message-ID"]
    assert result.detail["smtp"].startswith("250")
    # The long one-click URL survives intact (not folded into encoded words).
    assert msg["List-Unsubscribe"] == UNSUBSCRIBE
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().strip() == "Come back!"
    assert html.get_content().strip() == "<p>Come <b>back</b>!</p>"


def test_message_id_is_derived_from_the_idempotency_key() -> None:
    assert message_id("row-7", "a.example") == message_id("row-7", "a.example")
    assert message_id("row-7", "a.example") != message_id("row-8", "a.example")
    assert message_id("row-7", "a.example").endswith("@a.example>")


@pytest.mark.parametrize("content,part", [
    ({"html": None}, "text/plain"),
    ({"text": None}, "text/html"),
])
def test_single_part_messages(smtp: Server, make_channel: Callable[..., EmailChannel],
                              content: dict[str, Any], part: str) -> None:
    make_channel(smtp.port).send(message(**content))
    assert smtp.handler.received[0].parsed().get_content_type() == part


def test_one_connection_is_kept_across_sends(smtp: Server,
                                             make_channel: Callable[..., EmailChannel]) -> None:
    channel = make_channel(smtp.port)
    for i in range(5):
        channel.send(message(f"p{i}@example.com", key=f"k{i}"))
    assert len(smtp.handler.received) == 5
    assert len({r.peer for r in smtp.handler.received}) == 1


def test_reconnects_after_messages_per_connection(
        smtp: Server, make_channel: Callable[..., EmailChannel]) -> None:
    channel = make_channel(smtp.port, messages_per_connection=2)
    for i in range(5):
        channel.send(message(f"p{i}@example.com", key=f"k{i}"))
    assert len({r.peer for r in smtp.handler.received}) == 3


def test_reconnects_when_the_server_closed_the_idle_connection(
        smtp: Server, make_channel: Callable[..., EmailChannel]) -> None:
    channel = make_channel(smtp.port)
    channel.send(message(key="a"))
    smtp.drop_connections()
    channel.send(message(key="b"))
    assert [r.parsed()["Message-ID"] for r in smtp.handler.received] == [
        message_id("a", "shop.example"), message_id("b", "shop.example")]
    assert len({r.peer for r in smtp.handler.received}) == 2


@pytest.mark.parametrize("recipient,error,code", [
    ("bounce@example.com", PermanentError, "SMTP 550"),
    ("grey@example.com", TransientError, "SMTP 450"),
])
def test_refused_recipient(smtp: Server, make_channel: Callable[..., EmailChannel],
                           recipient: str, error: type[Exception], code: str) -> None:
    channel = make_channel(smtp.port)
    with pytest.raises(error, match=code) as info:
        channel.send(message(recipient))
    assert "RCPT TO" in str(info.value)
    # The connection was reset, not lost: the next message goes through on it.
    channel.send(message("ok@example.com"))
    assert [r.rcpt_tos for r in smtp.handler.received] == [["ok@example.com"]]


def test_refused_at_end_of_data_is_permanent(smtp: Server,
                                             make_channel: Callable[..., EmailChannel]) -> None:
    channel = make_channel(smtp.port)
    with pytest.raises(PermanentError, match="SMTP 554"):
        channel.send(message(subject="spam"))
    assert smtp.handler.received == []


ENCODED_BREAKS = [
    "=?utf-8?q?Ann=0D=0ABcc:_x@evil.example?=",              # the report's subject
    "=?utf-8?b?QW5uDQpCY2M6IHhAZXZpbC5leGFtcGxl?=",          # the same in base64
    "=?UTF-8?B?QW5uDQpCY2M6IHhAZXZpbC5leGFtcGxl?=",
    "=?utf-8?b?QW5uCkJjYzogeEBldmlsLmV4YW1wbGU?=",           # LF alone, no padding
    "Hello =?iso-8859-1?q?=0ABcc:_x@evil.example?= there",   # in the middle of text
    "=?utf-8*en?q?Ann=0D=0AFrom:_boss@shop.example?=",       # RFC 2231 language
    "=?utf-8?q?Ann=0D=0A Reply-To: x@evil.example?=",       # whitespace inside
    "=?utf-16?b?AEEAbgBuAA0ACgBCAGMAYwA6ACAAeA==?=",          # another charset
    "=?utf-8?b?PT91dGYtOD9xP0Fubj0wRD0wQUJjYzpfeEBldmlsLmV4YW1wbGU/PQ==?=",  # nested
    "=?utf-8?q?Ann=E2=80=A8Bcc:_x@evil.example?=",            # U+2028
    "=?utf-8?q?Ann=0BBcc:_x@evil.example?=",                  # a vertical tab
]


@pytest.mark.parametrize("subject", ENCODED_BREAKS)
def test_an_encoded_line_break_in_the_subject_is_refused(subject: str) -> None:
    """Issue 13: the check looks at the decoded value, so the result doesn't depend on
    whether this Python's email package has the CVE-2024-6923 fix."""
    channel = EmailChannel({"host": "smtp.example", "from": "Shop <news@shop.example>"})
    with pytest.raises(PermanentError, match="^subject contains .*encoded word|^subject "):
        channel.build(message(subject=subject))
    with pytest.raises(PermanentError, match="^header 'X-Tag'"):
        channel.build(message(headers={"X-Tag": subject}))


@pytest.mark.parametrize("subject", [
    "=?utf-8?q?Caf=C3=A9_au_lait?=", "Your cart =?utf-8?b?w6Q=?= misses you",
    "Half an encoded word =?utf-8?q?no end", "Tabs\tare fine",
])
def test_encoded_words_without_a_break_are_sent(subject: str) -> None:
    channel = EmailChannel({"host": "smtp.example", "from": "Shop <news@shop.example>"})
    msg = channel.build(message(subject=subject))
    assert "Bcc" not in msg and msg["Subject"]


def test_decoding_is_our_own() -> None:
    assert decode_encoded_words(ENCODED_BREAKS[0]) == "Ann\r\nBcc: x@evil.example"
    assert decode_encoded_words(ENCODED_BREAKS[8]) == "Ann\r\nBcc: x@evil.example"
    assert header_problem("plain text") is None
    assert header_problem("a\rb") == "contains a line break"


@pytest.mark.parametrize("recipient,content,headers,what", [
    ("ann@example.com", {"subject": "Hi\r\nBcc: all@example.com"}, {}, "subject"),
    ("ann@example.com", {"subject": "Hi\nthere"}, {}, "subject"),
    ("ann@example.com\r\nRCPT TO:<eve@example.com>", {}, {}, "recipient"),
    ("ann@example.com\n", {}, {}, "recipient"),
    ("ann@example.com, eve@example.com", {}, {}, "recipient"),
    ("Ann <ann@example.com>", {}, {}, "recipient"),
    ("ann@example.com", {}, {"X-Tag": "a\r\nBcc: eve@example.com"}, "header"),
    ("ann@example.com", {}, {"X-Tag\r\nBcc": "eve@example.com"}, "header"),
    ("ann@example.com", {}, {"Bcc": "eve@example.com"}, "header"),
    ("ann@example.com", {"subject": "a\u2028b"}, {}, "subject"),
])
def test_header_injection_is_refused_before_connecting(
        smtp: Server, make_channel: Callable[..., EmailChannel], recipient: str,
        content: dict[str, Any], headers: dict[str, str], what: str) -> None:
    channel = make_channel(smtp.port)
    with pytest.raises(PermanentError, match=what):
        channel.send(message(recipient, headers=headers, **content))
    assert channel._smtp is None  # never even connected
    assert smtp.handler.received == []


def test_starttls_and_auth(start_server: Callable[..., Server], certs: tuple[Path, Path],
                           make_channel: Callable[..., EmailChannel]) -> None:
    server = start_server(tls_context=_server_context(certs), require_starttls=True,
                          auth=True, auth_require_tls=True, auth_required=True)
    channel = make_channel(server.port, tls="starttls", ca_file=str(certs[0]),
                           username="shop", password="s3cret")
    channel.send(message())
    assert server.handler.logins == [(b"shop", b"s3cret")]
    assert len(server.handler.received) == 1


def test_wrong_password_is_transient(start_server: Callable[..., Server],
                                     certs: tuple[Path, Path],
                                     make_channel: Callable[..., EmailChannel]) -> None:
    server = start_server(tls_context=_server_context(certs), require_starttls=True,
                          auth=True, auth_required=True)
    channel = make_channel(server.port, tls="starttls", ca_file=str(certs[0]),
                           username="shop", password="wrong")
    with pytest.raises(TransientError, match="SMTP 535 at AUTH"):
        channel.send(message())
    assert server.handler.received == []


def test_auth_over_plain_loopback(start_server: Callable[..., Server],
                                  make_channel: Callable[..., EmailChannel]) -> None:
    server = start_server(auth=True, auth_require_tls=False)
    make_channel(server.port, username="dev", password="s3cret").send(message())
    assert server.handler.logins == [(b"dev", b"s3cret")]


def test_implicit_tls(start_server: Callable[..., Server], certs: tuple[Path, Path],
                      make_channel: Callable[..., EmailChannel]) -> None:
    server = start_server(ssl_context=_server_context(certs))
    make_channel(server.port, tls="tls", ca_file=str(certs[0])).send(message())
    assert len(server.handler.received) == 1


def test_untrusted_certificate_is_refused(start_server: Callable[..., Server],
                                          certs: tuple[Path, Path],
                                          make_channel: Callable[..., EmailChannel]) -> None:
    server = start_server(ssl_context=_server_context(certs))
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        make_channel(server.port, tls="tls").send(message())
    assert server.handler.received == []


def test_starttls_not_offered_is_not_a_downgrade(
        smtp: Server, make_channel: Callable[..., EmailChannel]) -> None:
    with pytest.raises(TransientError, match="does not offer STARTTLS"):
        make_channel(smtp.port, tls="starttls").send(message())
    assert smtp.handler.received == []


def test_connection_refused_is_transient(make_channel: Callable[..., EmailChannel]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError, match="cannot connect"):
        make_channel(port).send(message())


@pytest.mark.parametrize("settings,error", [
    ({"from": "news@shop.example"}, "host is required"),
    ({"host": "smtp.example"}, "from is required"),
    ({"host": "smtp.example", "from": "a@b.example", "tls": "ssl"}, "tls must be"),
    ({"host": "smtp.example", "from": "a@b.example", "tls": "none", "username": "u"},
     "clear text"),
    ({"host": "smtp.example", "from": "a@b.example\r\nBcc: x@y"}, "line break"),
    ({"host": "smtp.example", "from": "not an address"}, "from"),
])
def test_bad_settings(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        EmailChannel(settings)


def test_default_ports() -> None:
    base = {"host": "smtp.example", "from": "a@b.example"}
    assert EmailChannel(base).port == 587
    assert EmailChannel({**base, "tls": "tls"}).port == 465
    assert EmailChannel({**base, "tls": "none"}).port == 25
