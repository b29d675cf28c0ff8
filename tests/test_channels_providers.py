"""SMS (Twilio), push (FCM HTTP v1) and console channels; provider APIs via `responses`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kanal_collector.channels.base import OutgoingMessage, PermanentError, TransientError
from kanal_collector.channels.console import ConsoleChannel
from kanal_collector.channels.push import SCOPE, PushChannel
from kanal_collector.channels.sms import SmsChannel

TWILIO = "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
FCM = "https://fcm.googleapis.com/v1/projects/shop-app/messages:send"
TOKEN_URI = "https://oauth2.googleapis.com/token"


def msg(recipient: str, **content: Any) -> OutgoingMessage:
    return OutgoingMessage(outbox_id=1, idempotency_key="row-1", recipient=recipient,
                           content=content, metadata={"journey": "welcome"})


# -- sms ----------------------------------------------------------------------------


def sms(**settings: Any) -> SmsChannel:
    return SmsChannel({"account_sid": "AC123", "auth_token": "tok", "from": "+46701234567",
                       **settings})


@responses.activate
def test_sms_posts_to_twilio() -> None:
    responses.post(TWILIO, status=201, json={"sid": "SM1", "status": "queued"})
    result = sms(status_callback="https://t.shop.example/twilio").send(
        msg("+46709876543", text="Your order shipped"))
    assert result.provider_id == "SM1"
    assert result.detail == {"status": "queued"}
    [call] = responses.calls
    assert isinstance(call.request.body, str)
    form = parse_qs(call.request.body)
    assert form == {"To": ["+46709876543"], "From": ["+46701234567"],
                    "Body": ["Your order shipped"],
                    "StatusCallback": ["https://t.shop.example/twilio"]}
    auth = call.request.headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"AC123:tok").decode()


@responses.activate
def test_sms_with_messaging_service() -> None:
    responses.post(TWILIO, status=201, json={"sid": "SM2"})
    SmsChannel({"account_sid": "AC123", "auth_token": "tok",
                "messaging_service_sid": "MG9"}).send(msg("+46709876543", text="Hi"))
    body = responses.calls[0].request.body
    assert isinstance(body, str)
    form = parse_qs(body)
    assert form["MessagingServiceSid"] == ["MG9"] and "From" not in form


@responses.activate
@pytest.mark.parametrize("status,body,headers,error,match", [
    (400, {"code": 21211, "message": "The 'To' number is not valid.", "status": 400},
     {}, PermanentError, "error 21211"),
    (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"},
     {}, PermanentError, "21610"),
    (401, {"code": 20003, "message": "Authenticate"}, {}, PermanentError, "20003"),
    (429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "30"},
     TransientError, "20429"),
    (500, {"code": 20500, "message": "Internal Server Error"}, {}, TransientError, "500"),
    (503, {}, {}, TransientError, "503"),
])
def test_sms_errors(status: int, body: dict[str, Any], headers: dict[str, str],
                    error: type[Exception], match: str) -> None:
    responses.post(TWILIO, status=status, json=body, headers=headers)
    with pytest.raises(error, match=match) as info:
        sms().send(msg("+46709876543", text="Hi"))
    if status == 429:
        assert isinstance(info.value, TransientError) and info.value.retry_after == 30


@responses.activate
def test_sms_timeout_is_transient() -> None:
    responses.post(TWILIO, body=requests.ReadTimeout())
    with pytest.raises(TransientError, match="timed out"):
        sms().send(msg("+46709876543", text="Hi"))


@pytest.mark.parametrize("recipient", ["0701234567", "+46 70 123", "+4670\n1234567", ""])
def test_sms_refuses_bad_numbers_without_calling_twilio(recipient: str) -> None:
    with responses.RequestsMock() as mock, pytest.raises(PermanentError, match="E.164"):
        sms().send(msg(recipient, text="Hi"))
    assert len(mock.calls) == 0


@pytest.mark.parametrize("settings,error", [
    ({"account_sid": None}, "account_sid is required"),
    ({"from": None}, "from or messaging_service_sid"),
    ({"from": "Shop"}, "E.164"),
])
def test_sms_bad_settings(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        sms(**settings)


# -- push ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def service_account(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "shop-app", "private_key_id": "kid1",
        "private_key": pem, "client_email": "kanal@shop-app.iam.gserviceaccount.com",
        "token_uri": TOKEN_URI}))
    return path


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@responses.activate
def test_push_with_service_account(service_account: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    responses.post(TOKEN_URI, json={"access_token": "ya29.first", "expires_in": 3600})
    responses.post(FCM, json={"name": "projects/shop-app/messages/0:1"})
    clock = Clock()
    push = PushChannel({"service_account": str(service_account)}, clock=clock)
    result = push.send(msg("tok-abc", title="Back in stock", body="Your shoes",
                           data={"url": "/p/1", "n": 3}))
    assert result.provider_id == "projects/shop-app/messages/0:1"
    token_call, fcm_call = responses.calls
    # The OAuth2 JWT: RS256, signed by the service account's key, for the FCM scope.
    assert isinstance(token_call.request.body, str)
    form = parse_qs(token_call.request.body)
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims, signature = form["assertion"][0].split(".")
    assert json.loads(_b64decode(header)) == {"alg": "RS256", "typ": "JWT", "kid": "kid1"}
    assert json.loads(_b64decode(claims)) == {
        "iss": "kanal@shop-app.iam.gserviceaccount.com", "scope": SCOPE, "aud": TOKEN_URI,
        "iat": 1_700_000_000, "exp": 1_700_003_600}
    rsa_key.public_key().verify(_b64decode(signature), f"{header}.{claims}".encode(),
                                padding.PKCS1v15(), hashes.SHA256())
    assert fcm_call.request.headers["Authorization"] == "Bearer ya29.first"
    assert isinstance(fcm_call.request.body, bytes)
    assert json.loads(fcm_call.request.body) == {"message": {
        "token": "tok-abc", "notification": {"title": "Back in stock", "body": "Your shoes"},
        "data": {"url": "/p/1", "n": "3"}}}
    # The token is cached until shortly before it expires.
    push.send(msg("tok-abc", title="Again"))
    assert len(responses.calls) == 3
    clock.now += 3600
    responses.post(TOKEN_URI, json={"access_token": "ya29.second", "expires_in": 3600})
    push.send(msg("tok-abc", title="Later"))
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer ya29.second"
    push.close()


@responses.activate
def test_push_refreshes_a_rejected_token_once(service_account: Path) -> None:
    responses.post(TOKEN_URI, json={"access_token": "ya29.a", "expires_in": 3600})
    responses.post(FCM, status=401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    responses.post(FCM, json={"name": "projects/shop-app/messages/2"})
    push = PushChannel({"service_account": str(service_account)}, clock=Clock())
    assert push.send(msg("tok", body="hi")).provider_id == "projects/shop-app/messages/2"
    assert [c.request.url for c in responses.calls] == [TOKEN_URI, FCM, TOKEN_URI, FCM]


def _fcm_error(code: int, status: str, error_code: str | None = None) -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code}] if error_code else []
    return {"error": {"code": code, "message": "Requested entity was not found.",
                      "status": status, "details": details}}


@responses.activate
@pytest.mark.parametrize("status,body,headers,error,match", [
    (404, _fcm_error(404, "NOT_FOUND", "UNREGISTERED"), {}, PermanentError, "UNREGISTERED"),
    (400, _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), {}, PermanentError,
     "INVALID_ARGUMENT"),
    (403, _fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), {}, PermanentError,
     "SENDER_ID_MISMATCH"),
    (429, _fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {"Retry-After": "60"},
     TransientError, "QUOTA_EXCEEDED"),
    (503, _fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), {}, TransientError, "UNAVAILABLE"),
    (500, _fcm_error(500, "INTERNAL", "INTERNAL"), {}, TransientError, "INTERNAL"),
    (401, _fcm_error(401, "UNAUTHENTICATED"), {}, TransientError, "credentials"),
])
def test_push_errors(status: int, body: dict[str, Any], headers: dict[str, str],
                     error: type[Exception], match: str) -> None:
    responses.post(FCM, status=status, json=body, headers=headers)
    push = PushChannel({"access_token": "pre-issued", "project_id": "shop-app"})
    with pytest.raises(error, match=match) as info:
        push.send(msg("tok", title="Hi"))
    if status == 429:
        assert isinstance(info.value, TransientError) and info.value.retry_after == 60
    assert responses.calls[0].request.headers["Authorization"] == "Bearer pre-issued"


@responses.activate
def test_push_token_endpoint_failure_is_transient(service_account: Path) -> None:
    responses.post(TOKEN_URI, status=400, json={"error": "invalid_grant",
                                                "error_description": "Invalid JWT"})
    push = PushChannel({"service_account": str(service_account)}, clock=Clock())
    with pytest.raises(TransientError, match="Invalid JWT"):
        push.send(msg("tok", title="Hi"))


@pytest.mark.parametrize("settings,error", [
    ({}, "service_account or access_token"),
    ({"access_token": "x"}, "project_id"),
    ({"service_account": "/nonexistent/sa.json"}, "cannot read"),
])
def test_push_bad_settings(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PushChannel(settings)


@pytest.mark.parametrize("recipient,content,error", [
    ("", {"title": "x"}, "registration token"),
    ("tok en", {"title": "x"}, "registration token"),
    ("tok", {}, "no title, body or data"),
])
def test_push_refuses_bad_messages(recipient: str, content: dict[str, Any],
                                   error: str) -> None:
    push = PushChannel({"access_token": "t", "project_id": "p"})
    with pytest.raises(PermanentError, match=error):
        push.send(msg(recipient, **content))


# -- console ------------------------------------------------------------------------


def test_console_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleChannel({}).send(msg("ann@example.com", subject="Hi", text="Hello"))
    line = json.loads(capsys.readouterr().out)
    assert line["recipient"] == "ann@example.com"
    assert line["content"] == {"subject": "Hi", "text": "Hello"}
    assert line["idempotency_key"] == "row-1"
    assert line["metadata"] == {"journey": "welcome"}


def test_console_to_file(tmp_path: Path) -> None:
    out = tmp_path / "outbox.jsonl"
    console = ConsoleChannel({"path": str(out)})
    console.send(msg("a", text="one"))
    console.send(msg("b", text="two"))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["recipient"] for line in lines] == ["a", "b"]
