"""Email sent through a real SMTP server (aiosmtpd), DKIM-verified by Mail::DKIM, and its
bounces (RFC 3464 DSNs, ARF reports) sent back over SMTP and LMTP to Kanal's endpoint."""

from __future__ import annotations

import email
import email.policy
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from deliverability_util import Shop, write_rsa_key

from kanal_collector.channels.dkim import dns_record
from kanal_collector.channels.plugins import build_channels
from kanal_collector.deliverability import dsn
from kanal_collector.deliverability.hook import deliverability_hook
from kanal_collector.deliverability.receiver import start_receiver, stop_receiver
from kanal_collector.deliverability.settings import Settings
from kanal_collector.messages import Dispatcher
from kanal_collector.store.outbox import outbox_log
from kanal_collector.tracking.hook import email_tracking_hook
from kanal_collector.tracking.keys import KeyCache

VERIFIER = Path(__file__).with_name("dkim_verify.pl")


@dataclass
class Relay:
    """The shop's outgoing SMTP relay: records what it is given."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos),
                              envelope.original_content or b""))
        return "250 2.0.0 queued"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler = Relay()
    controller = _Controller(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, int(controller.port)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rsa_key(tmp_path_factory.mktemp("dkim") / "dkim.pem")


def make_shop(tmp_path: Path, relay_port: int, dkim_key: Path, protocol: str = "smtp",
              **deliverability: Any) -> tuple[Shop, Dispatcher]:
    sections = {
        "tracking": {"base_url": "https://t.shop.example"},
        "channels": {"email": {"host": "127.0.0.1", "port": relay_port, "tls": "none",
                               "from": "Kanal Shop <news@shop.example>",
                               "local_hostname": "kanal.test", "dkim_selector": "kanal1",
                               "dkim_private_key_file": str(dkim_key)}},
        "deliverability": {"bounces": {"address": "bounces@bounce.shop.example",
                                       "listen": "127.0.0.1:0", "protocol": protocol},
                           **deliverability},
    }
    shop = Shop(tmp_path / "kanal.db", sections)
    clock = shop.world.clock
    dispatcher = Dispatcher(shop.world.log.db, clock, build_channels(shop.config),
                            shop.world.catalog,
                            before_send=[email_tracking_hook(shop.config, clock),
                                         deliverability_hook(shop.config, clock)])
    return shop, dispatcher


@pytest.fixture
def env(tmp_path: Path, relay: tuple[Relay, int], dkim_key: Path
        ) -> Iterator[tuple[Shop, Dispatcher, Relay]]:
    shop, dispatcher = make_shop(tmp_path, relay[1], dkim_key)
    try:
        yield shop, dispatcher, relay[0]
    finally:
        dispatcher.close()
        shop.close()


def send(shop: Shop, dispatcher: Dispatcher, user: str, address: str, **kwargs: Any) -> int:
    pid = shop.world.log.pid(user) or shop.world.person(user, email=address, first_name="Ann")
    oid = shop.world.enqueue(pid, f"k-{user}-{len(kwargs)}-{shop.world.clock.now()}",
                             **kwargs)
    dispatcher.drain()
    assert shop.world.row(oid).state == "sent", shop.world.row(oid)
    return oid


def dkim_verify(message: bytes, record: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("perl") is None:
        pytest.skip("perl is missing")
    check = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e", "1"], capture_output=True)
    if check.returncode != 0:
        pytest.skip("Mail::DKIM is missing: apt-get install libmail-dkim-perl "
                    "(tests/run.sh does)")
    return subprocess.run(["perl", str(VERIFIER), "kanal1._domainkey.shop.example", record],
                          input=message.decode("latin-1"), capture_output=True, text=True,
                          timeout=60, encoding="latin-1")


def test_marketing_email_is_dkim_signed_and_verified_by_mail_dkim(
        env: tuple[Shop, Dispatcher, Relay], dkim_key: Path) -> None:
    shop, dispatcher, relay = env
    oid = send(shop, dispatcher, "ann", "ann@example.com", journey="cart", step="1")
    ((mail_from, rcpts, content),) = relay.received
    assert rcpts == ["ann@example.com"]
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["Precedence"] == "bulk"
    assert msg["Feedback-ID"] == "cart:cart:marketing:shop.example"
    assert msg["List-Unsubscribe"].startswith("<https://t.shop.example/u/")
    record = dns_record(dkim_key.read_bytes())
    result = dkim_verify(content, record)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("pass")
    signed = result.stdout.split(" h=")[1].lower()
    for header in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post",
                   "feedback-id", "precedence", "message-id"):
        assert header in signed.split(":")
    # One changed byte in the body and Mail::DKIM says so.
    tampered = content.replace(b"Hello Ann", b"Hello Bob")
    assert tampered != content
    assert dkim_verify(tampered, record).returncode == 1
    # So does a second List-Unsubscribe added after signing (the header is over-signed).
    added = b"List-Unsubscribe: <https://evil.example/>\r\n" + content
    assert dkim_verify(added, record).returncode == 1
    # The envelope sender is this row's own bounce address.
    assert mail_from.startswith("bounces+") and mail_from.endswith("@bounce.shop.example")
    assert shop.world.row(oid).provider_id in content.decode()


def test_transactional_email_has_no_bulk_headers(env: tuple[Shop, Dispatcher, Relay]) -> None:
    shop, dispatcher, relay = env
    send(shop, dispatcher, "ann", "ann@example.com", message="receipt", kind="transactional",
         data={"order": "A1"})
    msg = email.message_from_bytes(relay.received[0][2], policy=email.policy.default)
    assert msg["Precedence"] is None and msg["Feedback-ID"] is None
    assert relay.received[0][0].startswith("bounces+")


def dsn_message(to: str, recipient: str, action: str = "failed", status: str = "5.1.1",
                diagnostic: str = "smtp; 550 5.1.1 <x>: Recipient address rejected") -> bytes:
    """An RFC 3464 report, laid out as Postfix writes one."""
    boundary = "dsn-boundary"
    return (
        f"From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\nTo: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.com')}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f"\tboundary=\"{boundary}\"\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Notification\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not\r\n"
        f"be delivered to one or more recipients.\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Delivery report\r\n"
        f"Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.com\r\n"
        f"Arrival-Date: Tue, 27 Jan 2026 14:59:38 +0000 (UTC)\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.com\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\nSubject: Your cart\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def arf_message(to: str, recipient: str) -> bytes:
    """An abuse report (RFC 5965) from a mailbox provider's feedback loop."""
    boundary = "arf-boundary"
    return (
        f"From: fbl@mailbox.example\r\nTo: {to}\r\nSubject: FW: Your cart\r\n"
        f"Message-ID: {make_msgid(domain='mailbox.example')}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=feedback-report; "
        f"boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        f"This is an email abuse report.\r\n--{boundary}\r\n"
        f"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        f"User-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n\r\n--{boundary}\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\nSubject: Your cart\r\n\r\n--{boundary}--\r\n"
    ).encode()


@pytest.mark.parametrize(("action", "status", "diagnostic", "expected"), [
    ("failed", "5.1.1", "smtp; 550 5.1.1 user unknown", "hard"),
    ("failed", "5.4.4", "smtp; 550 no route", "hard"),
    ("failed", "5.0.0", "smtp; 550 no such user here", "hard"),
    ("failed", "5.2.2", "smtp; 552 mailbox full", "soft"),
    ("failed", "5.7.1", "smtp; 554 rejected as spam", "soft"),
    ("failed", "4.4.7", "delivery time expired", "soft"),
    ("delayed", "4.4.1", "connection timed out", None),
    ("delivered", "2.0.0", "", None),
])
def test_dsn_classification(action: str, status: str, diagnostic: str,
                            expected: str | None) -> None:
    parsed = dsn.parse(dsn_message("bounces+1-x@b.example", "ann@example.com", action,
                                   status, diagnostic))
    assert parsed.kind == "dsn"
    assert [f.kind for f in parsed.findings] == ([expected] if expected else [])
    if expected:
        assert parsed.findings[0].recipient == "ann@example.com"


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_dsn_over_smtp_and_lmtp_suppresses_the_address(
        tmp_path: Path, relay: tuple[Relay, int], dkim_key: Path, protocol: str) -> None:
    shop, dispatcher = make_shop(tmp_path, relay[1], dkim_key, protocol)
    settings = Settings.from_config(shop.config)
    server = start_receiver(shop.world.log.db, shop.world.clock, settings, KeyCache(()))
    try:
        oid = send(shop, dispatcher, "ann", "ann@example.com")
        bob = send(shop, dispatcher, "bob", "bob@example.com")
        verp_ann, verp_bob = relay[0].received[0][0], relay[0].received[1][0]
        client: smtplib.SMTP = (smtplib.LMTP if protocol == "lmtp" else smtplib.SMTP)(
            "127.0.0.1", server.port, timeout=30)
        try:
            client.ehlo_or_helo_if_needed() if protocol == "smtp" else client.ehlo()
            # Forged tokens and strangers' addresses are refused at RCPT TO.
            forged = verp_bob[:verp_bob.index("-") + 1] + "a" * 16 + "@bounce.shop.example"
            swapped = verp_ann.split("-")[0] + "-" + verp_bob.split("-")[1]
            for rcpt in (forged, swapped, "postmaster@bounce.shop.example",
                         "ann@example.com"):
                with pytest.raises(smtplib.SMTPRecipientsRefused):
                    client.sendmail("", [rcpt], dsn_message(rcpt, "ann@example.com"))
            refused = client.sendmail("", [verp_ann], dsn_message(verp_ann, "ann@example.com"))
            assert refused == {}
        finally:
            client.quit()
        assert shop.suppressed() == {"ann@example.com": "hard_bounce"}
        assert shop.feedback() == [("hard", "ann@example.com", oid, "dsn")]
        (event,) = shop.world.events("Email Bounced")
        assert event["body"]["properties"]["bounce_type"] == "hard"
        assert event["body"]["properties"]["outbox_id"] == oid
        assert [d["what"] for d in outbox_log(shop.conn, oid)] == ["bounced"]
        assert outbox_log(shop.conn, bob) == []
        # A complaint through the feedback loop, to Bob's bounce address.
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) if protocol == "smtp" \
                else smtplib.LMTP("127.0.0.1", server.port, timeout=30) as c2:
            c2.sendmail("", [verp_bob], arf_message(verp_bob, "bob@example.com"))
        assert shop.suppressed()["bob@example.com"] == "complaint"
        (unsub,) = shop.world.events("Unsubscribed")
        assert unsub["body"]["properties"]["via"] == "complaint"
        # An auto-reply is taken and dropped.
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) if protocol == "smtp" \
                else smtplib.LMTP("127.0.0.1", server.port, timeout=30) as c3:
            c3.sendmail("", [verp_bob], b"Subject: Out of office\r\n\r\nBack Monday.\r\n")
        assert len(shop.feedback()) == 2
    finally:
        stop_receiver(server)
        dispatcher.close()
        shop.close()


def test_a_suppressed_address_is_skipped_at_send_time(env: tuple[Shop, Dispatcher, Relay]
                                                     ) -> None:
    shop, dispatcher, relay = env
    from kanal_collector.deliverability.suppression import add

    send(shop, dispatcher, "ann", "ann@example.com")
    add(shop.conn, "ANN@example.com", reason="manual", detail="asked by phone",
        now_ms=int(shop.world.clock.now() * 1000))
    pid = shop.world.log.pid("ann")
    assert pid is not None
    oid = shop.world.enqueue(pid, "again", channel="email", fallbacks=["sms"])
    # No phone either: skipped at enqueue with the list's reason.
    assert shop.world.row(oid).state == "skipped"
    assert shop.world.row(oid).reason == "suppressed: manual"
    assert len(relay.received) == 1


@pytest.mark.slow
def test_kanal_serve_receives_bounces(tmp_path: Path) -> None:
    """A real `kanal serve` with [deliverability.bounces] listen: a DSN sent to it over
    SMTP suppresses the address, and the bounce reaches the person's timeline."""
    import time

    from kanal_testing import connect_to, start_collector
    from messages_util import World

    from kanal_collector.deliverability.verp import bounce_address
    from kanal_collector.tracking.keys import load_keys

    db = tmp_path / "kanal.db"
    world = World(db)
    try:
        pid = world.person("ann", email="ann@example.com")
        oid = world.enqueue(pid, "k1")
        world.dispatcher.drain()
        key = load_keys(world.conn, (), int(world.clock.now() * 1000))[0]
    finally:
        world.close()
    verp_ann = bounce_address("bounces", "bounce.shop.example", key, oid, "ann@example.com")
    config = tmp_path / "kanal.toml"
    config.write_text('[deliverability.bounces]\naddress = "bounces@bounce.shop.example"\n'
                      'listen = "127.0.0.1:0"\n', encoding="utf-8")
    collector = start_collector(db, args=["--config", str(config)])
    try:
        line = next(x for x in collector.output if "Receiving bounces on" in x)
        port = int(line.rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("", [verp_ann], dsn_message(verp_ann, "ann@example.com"))
        conn = connect_to(db)
        try:
            assert conn.execute("SELECT reason FROM email_suppressions").fetchall() == [
                ("hard_bounce",)]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the processor files it on the timeline
                on_timeline = conn.execute(
                    "SELECT count(*) FROM profile_events pe JOIN events e "
                    "ON e.id = pe.event_id WHERE e.event = 'Email Bounced'").fetchone()[0]
                if on_timeline:
                    break
                time.sleep(0.1)
            assert on_timeline == 1
        finally:
            conn.close()
    finally:
        collector.stop()
    assert any("Stopped." in x for x in collector.output)
