"""Provider webhooks (POST /hooks/<provider>): real signatures made here with keys made
here (and the providers' published worked examples), forgeries refused with 403 and
nothing stored, and what a verified bounce or complaint does."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from deliverability_util import Shop

from kanal_collector.deliverability.providers.resend import secret_bytes, svix_signature
from kanal_collector.deliverability.providers.sendgrid import load_public_key, valid_signature
from kanal_collector.messages.eligibility import ChannelInfo, Policy, check, load_person

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123abcd.pem"


# -- Amazon SNS: a certificate and signatures of our own --------------------------------------


class Sns:
    """An SNS stand-in: a key, a certificate for sns.amazonaws.com, signed messages."""

    def __init__(self, now: float) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        moment = dt.datetime.fromtimestamp(now, dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(moment - dt.timedelta(days=1))
                     .not_valid_after(moment + dt.timedelta(days=30))
                     .sign(self.key, hashes.SHA256()))
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        if url.endswith(".pem"):
            return self.cert.public_bytes(serialization.Encoding.PEM)
        return b"<ConfirmSubscriptionResponse/>"

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        # The string to sign, written out from the SNS documentation.
        if message["Type"] == "Notification":
            names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                     "TopicArn", "Type"]
        text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode(), "SigningCertURL": CERT_URL}


def ses_bounce(address: str, message_id: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    """An SES bounce notification shaped like the documentation's example."""
    return {
        "notificationType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1",
                                          "action": "failed",
                                          "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                   "timestamp": "2026-01-27T14:59:38.237Z",
                   "feedbackId": f"0000013-{uuid.uuid4()}-000000",
                   "reportingMTA": "dns; email.example.com"},
        "mail": {"timestamp": "2026-01-27T14:59:38.237Z", "source": "news@shop.example",
                 "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
                 "destination": [address], "headersTruncated": False,
                 "headers": [{"name": "Message-ID", "value": message_id}],
                 "commonHeaders": {"messageId": message_id, "from": ["news@shop.example"]}},
    }


def sns_notification(payload: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
            "Message": json.dumps(payload), "Timestamp": "2026-01-27T14:59:39.000Z"}


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path / "kanal.db", {"deliverability": {
        "ses": {"topic_arns": [TOPIC]},
        "postmark": {"username": "pm-user", "password": "pm-pass"},
        "mailgun": {"signing_key": "mg-signing-key-0123456789"},
        "sendgrid": {"public_key": SENDGRID_KEY_B64},
        "brevo": {"token": "brevo-token-0123456789"},
        "resend": {"secret": RESEND_SECRET},
        "soft_bounce_limit": 3,
    }})
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sns(shop: Shop) -> Sns:
    fake = Sns(shop.world.clock.now())
    shop.app.extensions["kanal.deliverability"].providers["ses"].fetch = fake.fetch
    return fake


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_hard_bounce_suppresses_and_is_on_the_profile(shop: Shop, sns: Sns,
                                                          version: str) -> None:
    oid = shop.sent("ann", "ann@example.com", journey="cart", step="1")
    body = sns.sign(sns_notification(ses_bounce("ann@example.com", shop.provider_id(oid))),
                    version)
    r = shop.post("/hooks/ses", body)
    assert r.status_code == 200, r.data
    assert r.json == {"received": 1, "recorded": 1}
    assert sns.fetched == [CERT_URL]
    assert shop.feedback() == [("hard", "ann@example.com", oid, "ses")]
    assert shop.suppressed() == {"ann@example.com": "hard_bounce"}
    row = shop.world.row(oid)
    assert row.state == "sent" and row.reason.startswith("bounced (hard) via ses")
    # `kanal journeys why` tells it after the send.
    from kanal_collector.journeys.explain import send_report

    assert "to ann@example.com; then bounced at" in send_report(shop.conn, row, None)["text"]
    (event,) = shop.world.events("Email Bounced")
    props = event["body"]["properties"]
    assert (event["origin"], event["key_kind"]) == ("email", "kanal")
    assert props["bounce_type"] == "hard" and props["outbox_id"] == oid
    assert props["journey"] == "cart" and "550 5.1.1" in props["reason"]
    shop.world.log.process()
    timeline = shop.world.log.profile("ann")
    assert timeline is not None
    # The next email to her is refused at send time, with the list's reason.
    person = load_person(shop.conn, shop.world.log.pid("ann"))
    assert person is not None
    assert check(shop.conn, person, ChannelInfo("email", "email", "email"),
                 kind="transactional", topic=None, policy=Policy()) == (
        "ann@example.com", "suppressed: hard bounce")
    # The same notification again records nothing more.
    assert shop.post("/hooks/ses", body).json == {"received": 1, "recorded": 0}
    assert len(shop.world.events("Email Bounced")) == 1


def test_ses_forgeries_get_403_and_store_nothing(shop: Shop, sns: Sns) -> None:
    oid = shop.sent("ann", "ann@example.com")
    good = sns.sign(sns_notification(ses_bounce("ann@example.com", shop.provider_id(oid))))
    tampered = {**good, "Message": good["Message"].replace("ann@", "bob@")}
    assert shop.post("/hooks/ses", tampered).status_code == 403
    assert shop.post("/hooks/ses", {**good, "Signature": "AAAA"}).status_code == 403
    assert shop.post("/hooks/ses", {**good, "SignatureVersion": "3"}).status_code == 403
    # A certificate anywhere but on an SNS host is never fetched.
    for url in ("https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
                "http://sns.eu-west-1.amazonaws.com/cert.pem",
                "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
                "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
                "https://s3.amazonaws.com/cert.pem"):
        assert shop.post("/hooks/ses", {**good, "SigningCertURL": url}).status_code == 403
    # Another topic, even well signed, is refused.
    other = sns.sign({**sns_notification(ses_bounce("ann@example.com", "x")),
                      "TopicArn": "arn:aws:sns:eu-west-1:999999999999:other"})
    assert shop.post("/hooks/ses", other).status_code == 403
    # Signed by a key that is not the certificate's.
    stranger = Sns(shop.world.clock.now())
    assert shop.post("/hooks/ses", stranger.sign(sns_notification(
        ses_bounce("ann@example.com", "x")))).status_code == 403
    assert set(sns.fetched) <= {CERT_URL}
    assert shop.feedback() == [] and shop.suppressed() == {}
    assert shop.world.events("Email Bounced") == []


def test_ses_subscription_is_confirmed_only_at_an_sns_host(shop: Shop, sns: Sns) -> None:
    confirm = ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
               f"&TopicArn={TOPIC}&Token=2336412f37")
    message = {"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()),
               "Token": "2336412f37", "TopicArn": TOPIC, "Message": "You have chosen …",
               "SubscribeURL": confirm, "Timestamp": "2026-01-27T14:59:39.000Z"}
    assert shop.post("/hooks/ses", sns.sign(message)).status_code == 200
    assert sns.fetched == [CERT_URL, confirm]
    evil = {**message, "SubscribeURL": "https://evil.example/?Action=ConfirmSubscription"}
    assert shop.post("/hooks/ses", sns.sign(evil)).status_code == 403
    assert sns.fetched == [CERT_URL, confirm]


def test_ses_complaint_unsubscribes_from_all_marketing_email(shop: Shop, sns: Sns) -> None:
    oid = shop.sent("ann", "ann@example.com", channel="marketing")
    complaint = {"notificationType": "Complaint",
                 "complaint": {"complainedRecipients": [{"emailAddress": "ann@example.com"}],
                               "complaintFeedbackType": "abuse", "feedbackId": "fb-1",
                               "timestamp": "2026-01-27T14:59:38.237Z"},
                 "mail": {"messageId": "ses-1",
                          "commonHeaders": {"messageId": shop.provider_id(oid)}}}
    assert shop.post("/hooks/ses", sns.sign(sns_notification(complaint))).status_code == 200
    assert shop.suppressed() == {"ann@example.com": "complaint"}
    (spam,) = shop.world.events("Email Marked as Spam")
    assert spam["body"]["properties"]["outbox_id"] == oid
    (unsub,) = shop.world.events("Unsubscribed")
    props = unsub["body"]["properties"]
    assert (props["channel"], props.get("topic"), props["via"]) == ("email", None, "complaint")
    assert props["scope"] == "all_marketing_email" and props["send_channel"] == "marketing"
    shop.world.log.process()
    person = load_person(shop.conn, shop.world.log.pid("ann"))
    assert person is not None
    assert person.computed["subscriptions"]["email"]["subscribed"] is False
    # Off the list again (say, by hand), she stays unsubscribed on every email channel.
    shop.conn.execute("DELETE FROM email_suppressions")
    for name in ("email", "marketing"):
        assert check(shop.conn, person, ChannelInfo(name, "email", "email"),
                     kind="marketing", topic="cart", policy=Policy())[1] == "unsubscribed"
    assert check(shop.conn, person, ChannelInfo("email", "email", "email"),
                 kind="transactional", topic=None, policy=Policy())[1] is None
    assert any(d["what"] == "complained" for d in _log(shop, oid))


def _log(shop: Shop, oid: int) -> list[dict[str, Any]]:
    from kanal_collector.store.outbox import outbox_log

    return outbox_log(shop.conn, oid)


# -- Postmark and Brevo: credentials ------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_basic_auth(shop: Shop) -> None:
    shop.sent("ann", "ann@example.com")
    # The documented bounce webhook's shape.
    bounce = {"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1,
              "Name": "Hard bounce", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
              "Description": "The server was unable to deliver your message",
              "Details": "550 unknown user", "Email": "ann@example.com",
              "BouncedAt": "2026-01-27T13:28:10Z", "Inactive": True}
    assert shop.post("/hooks/postmark", bounce, _basic("pm-user", "nope")).status_code == 403
    assert shop.post("/hooks/postmark", bounce).status_code == 403
    assert shop.post("/hooks/postmark", bounce, {"Authorization": "Bearer pm-pass"}
                     ).status_code == 403
    assert shop.feedback() == []
    r = shop.post("/hooks/postmark", bounce, _basic("pm-user", "pm-pass"))
    assert r.status_code == 200 and r.json["recorded"] == 1
    # Matched by address: the newest email sent to her.
    assert shop.feedback()[0][:2] == ("hard", "ann@example.com")
    assert shop.feedback()[0][2] is not None
    complaint = {**bounce, "RecordType": "SpamComplaint", "Type": "SpamComplaint", "ID": 43}
    assert shop.post("/hooks/postmark", complaint, _basic("pm-user", "pm-pass")
                     ).json["recorded"] == 1
    auto = {**bounce, "Type": "AutoResponder", "ID": 44}
    assert shop.post("/hooks/postmark", auto, _basic("pm-user", "pm-pass")
                     ).json["recorded"] == 0


def test_brevo_bearer_token(shop: Shop) -> None:
    oid = shop.sent("ann", "ann@example.com")
    event = {"event": "soft_bounce", "email": "ann@example.com", "id": 1,
             "date": "2026-01-27 00:00:00", "ts": 1604933619,
             "message-id": shop.provider_id(oid), "ts_event": 1604933654,
             "subject": "Your cart", "reason": "mailbox full"}
    assert shop.post("/hooks/brevo", event, {"Authorization": "Bearer wrong"}
                     ).status_code == 403
    r = shop.post("/hooks/brevo", [event], {"Authorization": "Bearer brevo-token-0123456789"})
    assert r.status_code == 200 and r.json["recorded"] == 1
    assert shop.feedback() == [("soft", "ann@example.com", oid, "brevo")]
    assert shop.suppressed() == {}


# -- Mailgun: HMAC of timestamp and token -------------------------------------------------------


def mailgun_body(shop: Shop, event: dict[str, Any], key: str = "mg-signing-key-0123456789",
                 timestamp: int | None = None) -> dict[str, Any]:
    ts = str(int(shop.world.clock.now()) if timestamp is None else timestamp)
    token = uuid.uuid4().hex
    signature = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": ts, "token": token, "signature": signature},
            "event-data": event}


def test_mailgun_soft_bounces_suppress_after_the_limit(shop: Shop) -> None:
    oid = shop.sent("ann", "ann@example.com")
    mid = shop.provider_id(oid).strip("<>")

    def failed(n: int) -> dict[str, Any]:
        return {"event": "failed", "id": f"evt-{n}", "severity": "temporary",
                "recipient": "ann@example.com", "reason": "generic",
                "delivery-status": {"code": 452, "message": "mailbox full"},
                "message": {"headers": {"message-id": mid}}}

    forged = mailgun_body(shop, failed(0), key="not-the-key")
    assert shop.post("/hooks/mailgun", forged).status_code == 403
    stale = mailgun_body(shop, failed(0), timestamp=int(shop.world.clock.now()) - 2 * 86_400)
    assert shop.post("/hooks/mailgun", stale).status_code == 403
    for n in (1, 2):
        assert shop.post("/hooks/mailgun", mailgun_body(shop, failed(n))).json["recorded"] == 1
        assert shop.suppressed() == {}
    assert shop.post("/hooks/mailgun", mailgun_body(shop, failed(3))).json["recorded"] == 1
    assert shop.suppressed() == {"ann@example.com": "soft_bounces"}
    assert [f[0] for f in shop.feedback()] == ["soft"] * 3
    assert all(f[2] == oid for f in shop.feedback())


def test_soft_bounces_outside_the_window_do_not_add_up(shop: Shop) -> None:
    shop.sent("ann", "ann@example.com")
    for n in range(3):
        event = {"event": "failed", "id": f"e{n}", "severity": "temporary",
                 "recipient": "ann@example.com"}
        assert shop.post("/hooks/mailgun", mailgun_body(shop, event)).json["recorded"] == 1
        shop.world.clock.advance(4 * 86_400)
    assert shop.suppressed() == {}


# -- SendGrid: ECDSA ----------------------------------------------------------------------------

SENDGRID_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SENDGRID_KEY_B64 = base64.b64encode(SENDGRID_PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

# SendGrid's worked example, from its helper libraries' tests.
SG_DOC_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwH"
              "Bcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==")
SG_DOC_PAYLOAD = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
SG_DOC_SIGNATURE = ("MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsb"
                    "VRamr2nlxFDWYNH2j/0=")
SG_DOC_TIMESTAMP = "1588788367"


def test_sendgrid_signature_matches_the_published_example() -> None:
    key = load_public_key(SG_DOC_KEY)
    assert valid_signature(key, SG_DOC_PAYLOAD, SG_DOC_SIGNATURE, SG_DOC_TIMESTAMP)
    assert not valid_signature(key, b"payload", SG_DOC_SIGNATURE, SG_DOC_TIMESTAMP)
    assert not valid_signature(key, SG_DOC_PAYLOAD, SG_DOC_SIGNATURE, "1388788367")
    assert not valid_signature(key, SG_DOC_PAYLOAD, SG_DOC_SIGNATURE.replace("H2j", "H3j"),
                               SG_DOC_TIMESTAMP)


def sendgrid_headers(body: bytes, timestamp: str,
                     key: ec.EllipticCurvePrivateKey = SENDGRID_PRIVATE) -> dict[str, str]:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


def test_sendgrid_batch_of_events(shop: Shop) -> None:
    ann = shop.sent("ann", "ann@example.com")
    bob = shop.sent("bob", "bob@example.com")
    events = [
        {"email": "ann@example.com", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 no such user", "sg_event_id": "ev-1",
         "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
         "smtp-id": shop.provider_id(ann), "timestamp": 1513299569},
        {"email": "bob@example.com", "event": "spamreport", "sg_event_id": "ev-2",
         "smtp-id": shop.provider_id(bob), "timestamp": 1513299569},
        {"email": "bob@example.com", "event": "delivered", "sg_event_id": "ev-3"},
    ]
    body = json.dumps(events).encode() + b"\r\n"
    ts = str(int(shop.world.clock.now()))
    forged = sendgrid_headers(body, ts, ec.generate_private_key(ec.SECP256R1()))
    assert shop.post("/hooks/sendgrid", body, forged).status_code == 403
    assert shop.post("/hooks/sendgrid", body + b" ", sendgrid_headers(body, ts)
                     ).status_code == 403
    assert shop.feedback() == []
    r = shop.post("/hooks/sendgrid", body, sendgrid_headers(body, ts))
    assert r.status_code == 200 and r.json == {"received": 2, "recorded": 2}
    assert shop.feedback() == [("hard", "ann@example.com", ann, "sendgrid"),
                               ("complaint", "bob@example.com", bob, "sendgrid")]
    assert shop.suppressed() == {"ann@example.com": "hard_bounce",
                                 "bob@example.com": "complaint"}


# -- Resend: Svix ---------------------------------------------------------------------------

RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-secret-32-bytes-long").decode()


def test_svix_signature_matches_the_published_example() -> None:
    key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert svix_signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                          b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def resend_headers(body: bytes, timestamp: int, msg_id: str = "msg_1") -> dict[str, str]:
    key = base64.b64decode(RESEND_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"svix-id": msg_id, "svix-timestamp": str(timestamp),
            "svix-signature": "v1,bm90IHRoaXMgb25l v1," + base64.b64encode(mac).decode()}


def test_resend_bounce(shop: Shop) -> None:
    shop.sent("ann", "ann@example.com")
    body = json.dumps({"type": "email.bounced", "created_at": "2026-01-27T23:41:12.126Z",
                       "data": {"email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
                                "from": "Shop <news@shop.example>", "to": ["ann@example.com"],
                                "subject": "Your cart",
                                "bounce": {"type": "Permanent", "subType": "General",
                                           "message": "550 no such user"}}}).encode()
    now = int(shop.world.clock.now())
    assert shop.post("/hooks/resend", body, resend_headers(body, now - 3600)).status_code == 403
    assert shop.post("/hooks/resend", body.replace(b"ann@", b"bob@"),
                     resend_headers(body, now)).status_code == 403
    r = shop.post("/hooks/resend", body, resend_headers(body, now))
    assert r.status_code == 200 and r.json["recorded"] == 1
    assert shop.suppressed() == {"ann@example.com": "hard_bounce"}


def test_unconfigured_provider_is_404(tmp_path: Path) -> None:
    s = Shop(tmp_path / "kanal.db")
    try:
        assert s.post("/hooks/ses", {}).status_code == 404
        assert s.post("/hooks/mailgun", {}).status_code == 404
    finally:
        s.close()


def test_webhook_settings_are_checked_at_start(tmp_path: Path) -> None:
    from kanal_collector.errors import ConfigError

    for sections, words in [
        ({"ses": {}}, "topic_arns"),
        ({"mailgun": {}}, "signing_key is required"),
        ({"sendgrid": {"public_key": "not a key"}}, "not a public key"),
        ({"brevo": {"username": "x"}}, "username and password, or token"),
        ({"bogus": {}}, "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=words):
            Shop(tmp_path / f"{uuid.uuid4().hex}.db", {"deliverability": sections})

