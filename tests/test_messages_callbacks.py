"""Twilio status callbacks (POST /hooks/twilio/<channel>): signatures, the events they
write, replays. In-process app on a real SQLite file; Twilio's API through `responses`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from kanal_testing import App, make_app
from messages_util import catalog

from kanal_collector.app import build_processor, close_app
from kanal_collector.channels.sms import SmsChannel, callback_url
from kanal_collector.errors import ConfigError
from kanal_collector.messages import Dispatcher, enqueue
from kanal_collector.messages.callbacks import twilio_signature, valid_twilio_signature
from kanal_collector.profiles.views import lookup
from kanal_collector.store import outbox
from kanal_collector.store import timeline as timeline_store
from kanal_collector.store.db import transaction

TOKEN = "twilio-auth-token"
TWILIO_API = "https://twilio.test/2010-04-01/Accounts/AC123/Messages.json"
SID = "SM0123456789abcdef0123456789abcdef"
SMS = {"account_sid": "AC123", "auth_token": TOKEN, "from": "+46701234567",
       "base_url": "https://twilio.test"}
HOOK = "/hooks/twilio/sms"

# Twilio's documented example (docs "Security": validating requests): auth token
# 12345, this URL and these POST parameters give these signatures. The docs have shown
# it with two different Caller/From numbers over the years.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def _doc_params(number: str) -> dict[str, str]:
    return {"CallSid": "CA1234567890ABCDE", "Caller": number, "Digits": "1234",
            "From": number, "To": "+18005551212"}


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    """Twilio's scheme, written out here: URL + sorted name+value pairs, HMAC-SHA1."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()


@pytest.mark.parametrize(("number", "expected"), [
    ("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
])
def test_signature_matches_twilios_documented_example(number: str, expected: str) -> None:
    params = _doc_params(number)
    assert twilio_signature("12345", DOC_URL, params.items()) == expected
    assert sign(DOC_URL, params, "12345") == expected
    assert valid_twilio_signature("12345", DOC_URL, params.items(), expected)
    # Twilio's helpers accept the URL with or without its default port.
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert valid_twilio_signature("12345", with_port, params.items(), expected)
    assert not valid_twilio_signature("12345", DOC_URL, {**params, "Digits": "1235"}.items(),
                                      expected)
    assert not valid_twilio_signature("54321", DOC_URL, params.items(), expected)
    assert not valid_twilio_signature("12345", DOC_URL, params.items(), None)
    assert not valid_twilio_signature("12345", DOC_URL, params.items(), "")


@pytest.mark.parametrize(("setting", "expected"), [
    (None, None),
    ("", None),
    ("https://kanal.example", "https://kanal.example/hooks/twilio/texts"),
    ("https://kanal.example/", "https://kanal.example/hooks/twilio/texts"),
    ("https://kanal.example:8443", "https://kanal.example:8443/hooks/twilio/texts"),
    ("https://t.shop.example/twilio", "https://t.shop.example/twilio"),
    ("https://kanal.example/?x=1", "https://kanal.example/?x=1"),
])
def test_callback_url(setting: str | None, expected: str | None) -> None:
    assert callback_url(setting, "texts") == expected


@pytest.mark.parametrize("setting", ["kanal.example", "ftp://kanal.example", 5])
def test_callback_url_refuses_what_is_not_a_url(setting: Any) -> None:
    with pytest.raises(ValueError, match="status_callback"):
        callback_url(setting, "sms")


# -- over HTTP ----------------------------------------------------------------------------


@dataclass
class Sms:
    env: App
    profile_id: int
    outbox_id: int
    callback: str | None
    """The StatusCallback the channel sent to Twilio."""

    def post(self, params: dict[str, str], *, url: str | None = None,
             signature: str | None = "sign", path: str = HOOK) -> Any:
        headers = {}
        if signature == "sign":
            signature = sign(url or self.callback or "", params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return self.env.client.post(path, data=params, headers=headers)

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [e for e in self.env.events() if e["event"] in names]


def status(message_status: str, sid: str = SID, **extra: str) -> dict[str, str]:
    """The form of a status callback as Twilio posts it."""
    return {"AccountSid": "AC123", "ApiVersion": "2010-04-01", "From": "+46701234567",
            "MessageSid": sid, "MessageStatus": message_status, "SmsSid": sid,
            "SmsStatus": message_status, "To": "+46709876543", **extra}


def _app(tmp_path: Path, sms: dict[str, Any], **settings: Any) -> App:
    return make_app(tmp_path / "kanal.db", sections={"channels": {"sms": sms}}, **settings)


@responses.activate
def _send(env: App, sms: dict[str, Any]) -> Sms:
    """Identify a person with a phone, queue a receipt and send it through Twilio."""
    r = env.client.post("/v1/identify", auth=(env.keys["secret"], ""),
                        json={"userId": "u1", "traits": {"phone": "+46709876543"}})
    assert r.status_code == 200, r.get_json()
    runtime = env.app.extensions["kanal"]
    processor = build_processor(runtime.db)
    processor.catch_up()
    processor.close()
    pid = lookup(runtime.db.conn(), "u1")
    assert pid is not None
    responses.post(TWILIO_API, status=201, json={"sid": SID, "status": "queued"})
    channels = {"sms": SmsChannel(sms)}
    with transaction(runtime.db.conn()) as conn:
        oid = enqueue(conn, profile_id=pid, message="receipt", channel="sms",
                      idempotency_key="order-7", kind="transactional", data={"order": "7"},
                      journey="checkout", step="confirm", now=env.clock.now(),
                      channels=channels, catalog=catalog())
    dispatcher = Dispatcher(runtime.db, env.clock, channels, catalog(), before_send=[])
    try:
        assert dispatcher.run_once() == 1
    finally:
        dispatcher.close()
    row = outbox.get(runtime.db.conn(), oid)
    assert (row.state, row.provider_id) == ("sent", SID)
    [call] = responses.calls
    form = parse_qs(str(call.request.body))
    return Sms(env, pid, oid, form.get("StatusCallback", [None])[0])


@pytest.fixture
def sent(tmp_path: Path) -> Iterator[Sms]:
    settings = {**SMS, "status_callback": "https://kanal.example"}
    env = _app(tmp_path, settings)
    try:
        yield _send(env, settings)
    finally:
        close_app(env.app)


def test_the_channel_asks_twilio_for_callbacks_on_the_route(sent: Sms) -> None:
    assert sent.callback == "https://kanal.example/hooks/twilio/sms"


def test_delivered_becomes_sms_delivered_attributed(sent: Sms) -> None:
    wake = sent.env.app.extensions["kanal"].wake
    wake.clear()
    r = sent.post(status("delivered"))
    assert r.status_code == 200
    assert wake.is_set()
    [accepted] = sent.events("SMS Sent")  # at send time: Twilio took it
    [event] = sent.events("SMS Delivered")  # the carrier's word, through the callback
    assert accepted["body"]["properties"]["provider_id"] == SID
    assert event["message_id"] == f"twilio:{SID}:delivered"
    assert (event["origin"], event["key_kind"], event["type"]) == ("sms", "kanal", "track")
    body = event["body"]
    assert body["userId"] == "u1"
    assert body["properties"] == {
        "outbox_id": sent.outbox_id, "message": "receipt", "journey": "checkout",
        "step": "confirm", "channel": "sms", "kind": "transactional",
        "profile_id": sent.profile_id, "provider": "twilio", "provider_id": SID,
        "provider_status": "delivered"}
    # The processor puts it on the person's timeline.
    runtime = sent.env.app.extensions["kanal"]
    processor = build_processor(runtime.db)
    processor.catch_up()
    processor.close()
    timeline = timeline_store.timeline(runtime.db.conn(), sent.profile_id)
    assert [e.event for e in timeline if e.event and e.event.startswith("SMS")] == [
        "SMS Delivered", "SMS Sent"]


@pytest.mark.parametrize("outcome", ["undelivered", "failed"])
def test_undelivered_and_failed_become_sms_failed(sent: Sms, outcome: str) -> None:
    r = sent.post(status(outcome, ErrorCode="30003", ErrorMessage="Unreachable handset"))
    assert r.status_code == 200
    [event] = sent.events("SMS Failed")
    assert event["message_id"] == f"twilio:{SID}:{outcome}"
    props = event["body"]["properties"]
    assert props["error_code"] == "30003"
    assert props["error_message"] == "Unreachable handset"
    assert props["provider_status"] == outcome
    assert (props["outbox_id"], props["journey"], props["message"]) == (
        sent.outbox_id, "checkout", "receipt")
    # The outbox row keeps what the send did.
    assert outbox.get(sent.env.app.extensions["kanal"].db.conn(), sent.outbox_id).state == "sent"


def test_a_repeated_callback_writes_nothing_new(sent: Sms) -> None:
    wake = sent.env.app.extensions["kanal"].wake
    assert sent.post(status("delivered")).status_code == 200
    before = sent.env.events()
    wake.clear()
    assert sent.post(status("delivered")).status_code == 200
    assert sent.env.events() == before
    assert not wake.is_set()
    # Another status of the same message is another event.
    assert sent.post(status("failed", ErrorCode="30008")).status_code == 200
    assert len(sent.env.events()) == len(before) + 1


@pytest.mark.parametrize("message_status", ["queued", "sending", "sent", "accepted", "read"])
def test_other_statuses_are_acknowledged_and_not_recorded(sent: Sms,
                                                          message_status: str) -> None:
    before = sent.env.events()
    assert sent.post(status(message_status)).status_code == 200
    assert sent.env.events() == before


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl",
                                       sign("https://kanal.example/hooks/twilio/sms",
                                            status("delivered"), "another-token")])
def test_a_bad_or_missing_signature_is_refused(sent: Sms, signature: str | None) -> None:
    before = sent.env.events()
    r = sent.post(status("delivered"), signature=signature)
    assert r.status_code == 403
    assert sent.env.events() == before


def test_the_signature_covers_every_parameter(sent: Sms) -> None:
    signed = status("failed", ErrorCode="30003")
    signature = sign(sent.callback or "", signed)
    r = sent.post({**signed, "MessageStatus": "delivered"}, signature=signature)
    assert r.status_code == 403
    assert sent.events("SMS Delivered", "SMS Failed") == sent.events("SMS Delivered")


def test_the_host_header_does_not_choose_the_signed_url(sent: Sms) -> None:
    # Signed for the URL the test client's request has (its Host header), not the one
    # Twilio was given: refused.
    r = sent.post(status("delivered"), url="http://localhost/hooks/twilio/sms")
    assert r.status_code == 403


def test_an_unknown_sid_is_acknowledged_and_logged(sent: Sms,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    before = sent.env.events()
    with caplog.at_level(logging.INFO, logger="kanal.callbacks"):
        r = sent.post(status("delivered", sid="SMffffffffffffffffffffffffffffffff"))
    assert r.status_code == 200
    assert sent.env.events() == before
    assert "SMffffffffffffffffffffffffffffffff" in caplog.text


def test_an_unknown_channel_is_404(sent: Sms) -> None:
    r = sent.post(status("delivered"), path="/hooks/twilio/push")
    assert r.status_code == 404


def test_a_callback_without_message_sid_is_400(sent: Sms) -> None:
    params = status("delivered")
    del params["MessageSid"], params["SmsSid"]
    assert sent.post(params).status_code == 400


def test_public_url_is_the_signed_base_without_status_callback(tmp_path: Path) -> None:
    # e.g. the callback set on a Messaging Service at Twilio rather than per message.
    env = _app(tmp_path, SMS, public_url="https://collector.example")
    try:
        sms = _send(env, SMS)
        assert sms.callback is None
        r = sms.post(status("delivered"), url="https://collector.example/hooks/twilio/sms")
        assert r.status_code == 200
        assert len(sms.events("SMS Delivered")) == 1
        r = sms.post(status("failed"), url="http://localhost/hooks/twilio/sms")
        assert r.status_code == 403
    finally:
        close_app(env.app)


def test_without_any_public_url_the_request_url_is_signed(tmp_path: Path) -> None:
    env = _app(tmp_path, SMS)
    try:
        sms = _send(env, SMS)
        r = sms.post(status("delivered"), url="http://localhost/hooks/twilio/sms")
        assert r.status_code == 200
        assert len(sms.events("SMS Delivered")) == 1
    finally:
        close_app(env.app)


def test_a_channel_without_auth_token_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"channels\.sms"):
        make_app(tmp_path / "kanal.db", sections={"channels": {"sms": {
            k: v for k, v in SMS.items() if k != "auth_token"}}})
