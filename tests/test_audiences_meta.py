"""The `meta` destination against Meta's documented request and answer shapes (mocked
with `responses`): POST/DELETE /{audience_id}/users with a hashed payload, the answer's
counts, partial invalid rows, errors, rate limits and Retry-After."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from audiences_util import META_URL, MetaRecorder, Shop, meta_toml

from kanal_collector.audiences.errors import PermanentError, TransientError
from kanal_collector.audiences.meta import MetaDestination


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    yield s
    s.close()


def meta(**settings: Any) -> MetaDestination:
    return MetaDestination({"audience_id": "2385000", "access_token": "EAAtoken",
                            **settings}, audience="vip_ads")


ROW = {"EMAIL": hashlib.sha256(b"a@example.com").hexdigest()}


@responses.activate
def test_add_and_remove_requests() -> None:
    recorder = MetaRecorder(responses.mock)
    destination = meta(app_secret="s3cret")
    assert destination.send("add", [ROW]).rejected == {}
    assert destination.send("remove", [ROW]).note is None
    (m1, p1, form), (m2, p2, _) = recorder.calls
    assert (m1, m2) == ("POST", "DELETE")
    assert p1 == p2 == {"schema": ["EMAIL"], "data": [[ROW["EMAIL"]]]}
    assert form["access_token"] == "EAAtoken"
    # https://developers.facebook.com/docs/graph-api/securing-requests
    assert form["appsecret_proof"] == hmac.new(b"s3cret", b"EAAtoken",
                                               hashlib.sha256).hexdigest()
    assert destination.requests("remove", [ROW])[0].as_json() == {
        "method": "DELETE", "url": META_URL, "body": {"payload": p1}}


@responses.activate
def test_invalid_entries_are_a_note() -> None:
    responses.add(responses.POST, META_URL, json={
        "audience_id": "2385000", "session_id": "9", "num_received": 2,
        "num_invalid_entries": 1, "invalid_entry_samples": {"x": "Invalid EMAIL"}})
    result = meta().send("add", [ROW, ROW])
    assert result.rejected == {}
    assert result.note == "Meta found 1 invalid row(s) (x: Invalid EMAIL)"


@pytest.mark.parametrize(("status", "error", "headers", "transient", "wait"), [
    # https://developers.facebook.com/docs/marketing-api/error-reference
    (400, {"message": "Invalid OAuth access token.", "type": "OAuthException",
           "code": 190, "fbtrace_id": "A"}, {}, False, None),
    (403, {"message": "(#200) Permissions error", "type": "OAuthException", "code": 200},
     {}, False, None),
    (400, {"message": "Invalid parameter", "code": 100, "error_subcode": 1713230,
           "error_user_title": "Audience Upload Blocked",
           "error_user_msg": "resolve integrity restrictions"}, {}, False, None),
    # rate limits: custom audience calls, with the time to regain access (minutes)
    (400, {"message": "There have been too many calls", "code": 80003,
           "is_transient": True},
     {"X-Business-Use-Case-Usage": json.dumps({"123": [{
         "type": "custom_audience", "call_count": 100,
         "estimated_time_to_regain_access": 7}]})}, True, 420.0),
    (400, {"message": "User request limit reached", "code": 17}, {}, True, None),
    (429, {"message": "slow down", "code": 613}, {"Retry-After": "90"}, True, 90.0),
    (500, {"message": "An unknown error occurred", "code": 1}, {}, True, None),
    (503, {"message": "Service temporarily unavailable", "code": 2, "is_transient": True},
     {}, True, None),
])
@responses.activate
def test_errors(status: int, error: dict[str, Any], headers: dict[str, str],
                transient: bool, wait: float | None) -> None:
    responses.add(responses.POST, META_URL, json={"error": error}, status=status,
                  headers=headers)
    expected = TransientError if transient else PermanentError
    with pytest.raises(expected) as info:
        meta().send("add", [ROW])
    assert f"error {error['code']}" in str(info.value)
    if transient:
        assert info.value.retry_after == wait  # type: ignore[attr-defined]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="audience_id must be the Custom Audience's numeric"):
        meta(audience_id="act_1")
    with pytest.raises(ValueError, match="batch_size must be a whole number from 1 to "
                                         "10,000"):
        meta(batch_size=20_000)


def test_a_sync_sends_hashes_only(shop: Shop) -> None:
    """Raw values never leave Kanal: no email or phone, in any of its forms."""
    raw = {"email": "Ada.Lovelace@Example.com", "phone": "+46701234567",
           "firstName": "Ada", "lastName": "Lovelace", "country": "SE"}
    shop.configure(meta_toml(identifiers=["email", "phone", "name", "address"]))
    shop.person("ada", **raw)
    shop.person("bob", phone="+46707654321")
    with responses.RequestsMock() as mock:
        recorder = MetaRecorder(mock)
        assert shop.sync().state == "done"
        shop.identify("ada", vip=False)
        assert shop.sync().state == "done"
    bodies = [json.dumps(p) + json.dumps(f) for _, p, f in recorder.calls]
    forms = ["ada.lovelace@example.com", "Ada.Lovelace@Example.com", "+46701234567",
             "46701234567", "0701234567", "+46707654321", "46707654321", "bob@example.com",
             "Lovelace", "lovelace", "bob"]  # (not "ada": hex digits)
    for body in bodies:
        for value in forms:
            assert value not in body, value
    assert [m for m, _, _ in recorder.calls] == ["POST", "DELETE"]
    assert len(recorder.rows("POST")) == 2 and len(recorder.rows("DELETE")) == 1
    assert all(len(v) in (0, 64) for row in recorder.rows() for v in row)
