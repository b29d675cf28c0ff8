"""The `google_ads` destination against the Google Ads API's documented REST shapes
(mocked with `responses`): an OfflineUserDataJob per batch (create with the EEA consent
fields, addOperations with partial failure, run), partial failures, quota errors, and
OAuth refresh tokens."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from audiences_util import Shop

from kanal_collector.audiences.errors import PermanentError, TransientError
from kanal_collector.audiences.google import GoogleAdsDestination

API = "https://googleads.googleapis.com/v26"
JOBS = f"{API}/customers/1234567890/offlineUserDataJobs"
JOB = "customers/1234567890/offlineUserDataJobs/555"
TOKEN_URL = "https://oauth2.googleapis.com/token"
FAILURE = "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure"


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def row(email: str) -> dict[str, Any]:
    return {"userIdentifiers": [{"hashedEmail": h(email)}]}


def google(**settings: Any) -> GoogleAdsDestination:
    return GoogleAdsDestination({"customer_id": "123-456-7890", "user_list_id": "777",
                                 "developer_token": "DEVTOKEN", "access_token": "ya29.a",
                                 **settings}, audience="buyers")


def job_answers(add: dict[str, Any] | None = None) -> None:
    responses.add(responses.POST, f"{JOBS}:create", json={"resourceName": JOB})
    responses.add(responses.POST, f"{API}/{JOB}:addOperations", json=add or {})
    responses.add(responses.POST, f"{API}/{JOB}:run",
                  json={"name": "customers/1234567890/operations/abc"})


def bodies() -> list[tuple[str, Any]]:
    return [(c.request.url, json.loads(c.request.body)) for c in responses.calls]


@responses.activate
def test_a_batch_is_one_job_with_consent_on_adds() -> None:
    job_answers()
    assert google(login_customer_id="111-222-3333").send(
        "add", [row("a@example.com"), row("b@example.com")]).rejected == {}
    (u1, create), (u2, ops), (u3, run) = bodies()
    assert create == {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
                              "customerMatchUserListMetadata": {
                                  "userList": "customers/1234567890/userLists/777",
                                  "consent": {"adUserData": "GRANTED",
                                              "adPersonalization": "GRANTED"}}}}
    assert ops == {"operations": [{"create": row("a@example.com")},
                                  {"create": row("b@example.com")}],
                   "enablePartialFailure": True}
    assert u3 == f"{API}/{JOB}:run" and run == {}
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == "Bearer ya29.a"
    assert headers["developer-token"] == "DEVTOKEN"
    assert headers["login-customer-id"] == "1112223333"


@responses.activate
def test_removals_carry_no_consent() -> None:
    job_answers()
    google().send("remove", [row("a@example.com")])
    (_, create), (_, ops), _ = bodies()
    assert "consent" not in create["job"]["customerMatchUserListMetadata"]
    assert ops["operations"] == [{"remove": row("a@example.com")}]


@responses.activate
def test_partial_failures_name_the_refused_operations() -> None:
    job_answers({"partialFailureError": {
        "code": 3, "message": "Multiple errors in ‘details’.",
        "details": [{"@type": FAILURE, "errors": [{
            "errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
            "message": "The SHA256 encoded value is malformed.",
            "location": {"fieldPathElements": [
                {"fieldName": "operations", "index": 1}, {"fieldName": "create"},
                {"fieldName": "user_identifiers", "index": 0},
                {"fieldName": "hashed_email"}]}}]}]}})
    result = google().send("add", [row("a@example.com"), row("b@example.com"),
                                   row("c@example.com")])
    assert result.rejected == {1: "offlineUserDataJobError=INVALID_SHA256_FORMAT: "
                                  "The SHA256 encoded value is malformed."}
    assert len(responses.calls) == 3  # the job still runs for the other two


@pytest.mark.parametrize(("status", "error", "transient", "wait"), [
    (429, {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Resource exhausted",
           "details": [{"@type": FAILURE, "errors": [{
               "errorCode": {"quotaError": "RESOURCE_EXHAUSTED"},
               "message": "Too many requests. Retry in 30 seconds.",
               "details": {"quotaErrorDetails": {"rateScope": "DEVELOPER",
                                                 "rateName": "Number of operations",
                                                 "retryDelay": "30s"}}}]}]}, True, 30.0),
    (409, {"code": 409, "status": "ABORTED", "message": "Multiple requests were attempting "
           "to modify the same resource at once.", "details": [{"@type": FAILURE,
               "errors": [{"errorCode": {"databaseError": "CONCURRENT_MODIFICATION"},
                           "message": "Retry the request."}]}]}, True, None),
    (503, {"code": 503, "status": "UNAVAILABLE", "message": "The service is unavailable."},
     True, None),
    (403, {"code": 403, "status": "PERMISSION_DENIED", "message": "denied",
           "details": [{"@type": FAILURE, "errors": [{
               "errorCode": {"authorizationError": "USER_PERMISSION_DENIED"},
               "message": "User doesn't have permission to access customer."}]}]},
     False, None),
    (400, {"code": 400, "status": "INVALID_ARGUMENT", "message": "invalid",
           "details": [{"@type": FAILURE, "errors": [{
               "errorCode": {"offlineUserDataJobError": "INVALID_USER_LIST_ID"},
               "message": "The user list ID provided for the job is invalid."}]}]},
     False, None),
])
@responses.activate
def test_errors(status: int, error: dict[str, Any], transient: bool,
                wait: float | None) -> None:
    responses.add(responses.POST, f"{JOBS}:create", json={"error": error}, status=status)
    with pytest.raises(TransientError if transient else PermanentError) as info:
        google().send("add", [row("a@example.com")])
    assert f"Google Ads answered {status}" in str(info.value)
    if transient:
        assert info.value.retry_after == wait  # type: ignore[attr-defined]


@responses.activate
def test_refresh_token_flow() -> None:
    now = [1000.0]
    tokens = iter(["ya29.first", "ya29.second"])

    def token(request: Any) -> tuple[int, dict[str, str], str]:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        assert form == {"grant_type": "refresh_token", "client_id": "cid",
                        "client_secret": "csecret", "refresh_token": "1//rt"}
        return 200, {}, json.dumps({"access_token": next(tokens), "expires_in": 3599,
                                    "token_type": "Bearer"})

    responses.add_callback(responses.POST, TOKEN_URL, callback=token)
    destination = GoogleAdsDestination(
        {"customer_id": "1234567890", "user_list_id": "777", "developer_token": "D",
         "client_id": "cid", "client_secret": "csecret", "refresh_token": "1//rt"},
        audience="buyers", clock=lambda: now[0])
    job_answers()
    destination.send("add", [row("a@example.com")])
    job_answers()
    destination.send("add", [row("b@example.com")])  # the cached token
    auths = [c.request.headers.get("Authorization") for c in responses.calls
             if c.request.url != TOKEN_URL]
    assert set(auths) == {"Bearer ya29.first"}
    # revoked early: a 401 gets a fresh token once, and the request is made again
    responses.add(responses.POST, f"{JOBS}:create", status=401, json={"error": {
        "code": 401, "status": "UNAUTHENTICATED", "message": "Request had invalid "
        "authentication credentials."}})
    job_answers()
    responses.calls.reset()
    destination.send("add", [row("c@example.com")])
    assert [c.request.headers.get("Authorization") for c in responses.calls][-3:] == \
        ["Bearer ya29.second"] * 3


@responses.activate
def test_a_bad_refresh_token_is_permanent() -> None:
    responses.add(responses.POST, TOKEN_URL, status=400, json={
        "error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    destination = google(access_token="", client_id="c", client_secret="s",
                         refresh_token="r")
    with pytest.raises(PermanentError, match="Token has been expired or revoked"):
        destination.send("add", [row("a@example.com")])


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="customer_id must be digits"):
        google(customer_id="acme")
    with pytest.raises(ValueError, match="set access_token, or client_id"):
        google(access_token="")


def test_a_sync_to_google(tmp_path: Path) -> None:
    shop = Shop(tmp_path, """
        [audiences.buyers]
        destination = "google_ads"
        segment = "vips"
        customer_id = "123-456-7890"
        user_list_id = "777"
        developer_token = "DEVTOKEN"
        access_token = "ya29.a"
        """)
    try:
        shop.person("ada", phone="+46701234567")
        shop.person("bob", consent=False)
        with responses.RequestsMock() as mock:
            mock.add(responses.POST, f"{JOBS}:create", json={"resourceName": JOB})
            mock.add(responses.POST, f"{API}/{JOB}:addOperations", json={})
            mock.add(responses.POST, f"{API}/{JOB}:run", json={"name": "op"})
            assert shop.sync("buyers").state == "done"
            ops = json.loads(mock.calls[1].request.body)["operations"]
        assert ops == [{"create": {"userIdentifiers": [
            {"hashedEmail": h("ada@example.com")},
            {"hashedPhoneNumber": h("+46701234567")}]}}]  # bob: no consent, not sent
    finally:
        shop.close()
