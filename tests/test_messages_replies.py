"""STOP, START and HELP through Twilio's signed incoming message webhook (issue 13):
POST /hooks/twilio/<channel>/inbound changes the person's SMS subscription and is an
event. In-process app on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import App, make_app
from test_messages_callbacks import SMS, sign

from kanal_collector.app import build_processor, close_app
from kanal_collector.messages.eligibility import ChannelInfo, Policy, check, load_person
from kanal_collector.messages.replies import keyword_of
from kanal_collector.profiles.views import lookup

PUBLIC = "https://kanal.example"
INBOUND = f"{PUBLIC}/hooks/twilio/sms/inbound"
PHONE = "+46709876543"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "kanal.db", public_url=PUBLIC,
                   sections={"channels": {"sms": SMS}})
    r = app.client.post("/v1/identify", auth=(app.keys["secret"], ""),
                        json={"userId": "u1", "traits": {"phone": PHONE}})
    assert r.status_code == 200
    _process(app)
    try:
        yield app
    finally:
        close_app(app.app)


def _process(env: App) -> None:
    processor = build_processor(env.app.extensions["kanal"].db)
    processor.catch_up()
    processor.close()


def _text(env: App, body: str, sid: str, *, sender: str = PHONE,
          signature: str | None = "sign", **extra: str) -> Any:
    params = {"AccountSid": "AC123", "ApiVersion": "2010-04-01", "Body": body,
              "From": sender, "MessageSid": sid, "NumMedia": "0", "SmsSid": sid,
              "To": "+46701234567", **extra}
    headers = {}
    if signature == "sign":
        signature = sign(INBOUND, params)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return env.client.post("/hooks/twilio/sms/inbound", data=params, headers=headers)


def _may_text_offers(env: App) -> str | None:
    conn = env.app.extensions["kanal"].db.conn()
    person = load_person(conn, lookup(conn, "u1") or 0)
    assert person is not None
    return check(conn, person, ChannelInfo("sms", "sms", "phone"), kind="marketing",
                 topic=None, policy=Policy())[1]


@pytest.mark.parametrize(("body", "opt_out_type", "expected"), [
    ("STOP", None, "STOP"), (" stop ", None, "STOP"), ("Unsubscribe", None, "STOP"),
    ("start", None, "START"), ("UNSTOP", None, "START"), ("yes", None, "START"),
    ("help", None, "HELP"), ("INFO", None, "HELP"),
    ("stop please", None, None), ("thanks!", None, None),
    ("Sluta", "STOP", "STOP"),  # a keyword of Advanced Opt-Out, named by Twilio
])
def test_keywords(body: str, opt_out_type: str | None, expected: str | None) -> None:
    assert keyword_of(body, opt_out_type) == expected


def test_start_opts_in_stop_opts_out_and_each_is_an_event(env: App) -> None:
    assert _may_text_offers(env) == "no opt-in"
    r = _text(env, "START", "SM1")
    assert r.status_code == 200 and r.mimetype == "text/xml"
    assert "<Response></Response>" in r.get_data(as_text=True)
    _process(env)
    assert _may_text_offers(env) is None
    assert _text(env, "Stop", "SM2").status_code == 200
    assert _text(env, "Stop", "SM2").status_code == 200  # Twilio retried: nothing new
    _process(env)
    assert _may_text_offers(env) == "unsubscribed"
    assert _text(env, "HELP", "SM3").status_code == 200
    assert _text(env, "what time do you open?", "SM4").status_code == 200
    events = [e for e in env.events() if e["origin"] == "sms"]
    assert [(e["event"], e["message_id"]) for e in events] == [
        ("Subscribed", "twilio-in:SM1"), ("Unsubscribed", "twilio-in:SM2"),
        ("SMS Help Requested", "twilio-in:SM3"), ("SMS Received", "twilio-in:SM4")]
    props = events[1]["body"]["properties"]
    assert (props["channel"], props["via"], props["keyword"]) == ("sms", "sms_keyword", "STOP")
    assert events[1]["key_kind"] == "kanal" and events[1]["body"]["userId"] == "u1"
    assert events[3]["body"]["properties"]["body"] == "what time do you open?"


def test_an_unsigned_or_forged_message_changes_nothing(env: App) -> None:
    assert _text(env, "START", "SM1", signature=None).status_code == 403
    assert _text(env, "START", "SM1", signature=sign(INBOUND, {"Body": "STOP"})
                 ).status_code == 403
    assert _text(env, "START", "SM1", signature=sign(INBOUND, {}, "wrong")).status_code == 403
    assert [e for e in env.events() if e["origin"] == "sms"] == []
    assert env.client.post("/hooks/twilio/nope/inbound", data={}).status_code == 404
    assert _may_text_offers(env) == "no opt-in"


def test_a_number_nobody_has_is_answered_and_not_recorded(env: App) -> None:
    assert _text(env, "START", "SM9", sender="+46700000001").status_code == 200
    assert [e for e in env.events() if e["origin"] == "sms"] == []

