"""The ingest routes through Flask's test client: statuses, storage, hostile inputs."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from kanal_testing import App


def basic(key: str) -> dict[str, str]:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def post(env: App, path: str, body: Any, *, key: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers.update(basic(key))
    return env.client.post(path, data=data, headers=all_headers)


TRACK = {"userId": "u1", "event": "Product Added", "properties": {"sku": "A-1", "price": 9.5}}


def test_track_is_stored_with_source_key_kind_and_origin(kanal_app: App) -> None:
    r = post(kanal_app, "/v1/track", TRACK, key=kanal_app.keys["secret"])
    assert r.status_code == 200
    assert r.get_json()["success"] is True
    [event] = kanal_app.events()
    assert (event["type"], event["event"], event["user_id"]) == ("track", "Product Added", "u1")
    assert (event["origin"], event["key_kind"], event["verified"]) == ("server", "secret", 1)
    assert event["body"]["properties"] == {"sku": "A-1", "price": 9.5}
    assert event["source_id"] == 1


@pytest.mark.parametrize("path,body,column,value", [
    ("/v1/identify", {"userId": "u1", "traits": {"plan": "pro"}}, "type", "identify"),
    ("/v1/page", {"anonymousId": "a", "name": "Home"}, "event", "Home"),
    ("/v1/screen", {"anonymousId": "a", "name": "Cart"}, "type", "screen"),
    ("/v1/group", {"userId": "u1", "groupId": "g1"}, "type", "group"),
    ("/v1/alias", {"userId": "u1", "previousId": "a"}, "type", "alias"),
    ("/v1/t", {"anonymousId": "a", "event": "X"}, "type", "track"),
    ("/v1/i", {"userId": "u"}, "type", "identify"),
    ("/v1/p", {"anonymousId": "a"}, "type", "page"),
    ("/v1/s", {"anonymousId": "a"}, "type", "screen"),
    ("/v1/g", {"anonymousId": "a", "groupId": "g"}, "type", "group"),
    ("/v1/a", {"userId": "u", "previousId": "a"}, "type", "alias"),
])
def test_every_route_and_short_path(kanal_app: App, path: str, body: dict[str, Any],
                                    column: str, value: str) -> None:
    r = post(kanal_app, path, body, key=kanal_app.keys["public"])
    assert r.status_code == 200, r.get_json()
    [event] = kanal_app.events()
    assert event[column] == value


def test_write_key_in_body_and_text_plain(kanal_app: App) -> None:
    body = {**TRACK, "writeKey": kanal_app.keys["public"]}
    r = kanal_app.client.post("/v1/t", data=json.dumps(body),
                              headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    assert kanal_app.events()[0]["key_kind"] == "public"


def test_gzip_body(kanal_app: App) -> None:
    batch = {"batch": [{**TRACK, "type": "track", "messageId": f"m{i}"} for i in range(50)]}
    r = post(kanal_app, "/v1/batch", None, key=kanal_app.keys["secret"],
             headers={"Content-Encoding": "gzip"}, raw=gzip.compress(json.dumps(batch).encode()))
    assert r.status_code == 200
    assert r.get_json()["stored"] == 50


def test_replayed_message_id_stores_nothing_new(kanal_app: App) -> None:
    body = {**TRACK, "messageId": "same"}
    first = post(kanal_app, "/v1/track", body, key=kanal_app.keys["secret"])
    second = post(kanal_app, "/v1/track", body, key=kanal_app.keys["secret"])
    assert first.status_code == second.status_code == 200
    assert second.get_json() == {"success": True, "stored": 0, "duplicates": 1}
    assert len(kanal_app.events()) == 1


def test_clock_skew_is_corrected(kanal_app: App) -> None:
    # The client's clock is an hour fast; the event happened 5 s before it was sent.
    now = kanal_app.clock.now()
    from kanal_collector.clock import utc_iso

    body = {**TRACK, "timestamp": utc_iso(now + 3600 - 5), "sentAt": utc_iso(now + 3600)}
    post(kanal_app, "/v1/track", body, key=kanal_app.keys["secret"])
    [event] = kanal_app.events()
    assert event["timestamp"] == int((now - 5) * 1000)
    assert event["body"]["originalTimestamp"] == utc_iso(now + 3600 - 5)
    assert event["body"]["receivedAt"] == utc_iso(now)


def test_batch_context_and_integrations_merge_into_items(kanal_app: App) -> None:
    body = {"context": {"library": {"name": "x"}, "locale": "sv-SE"},
            "integrations": {"All": False},
            "batch": [{"type": "track", "userId": "u", "event": "A",
                       "context": {"locale": "de-DE"}},
                      {"type": "identify", "userId": "u"}]}
    r = post(kanal_app, "/v1/batch", body, key=kanal_app.keys["secret"])
    assert r.status_code == 200
    first, second = (e["body"] for e in kanal_app.events())
    assert first["context"]["locale"] == "de-DE"
    assert first["context"]["library"] == {"name": "x"}
    assert second["context"]["locale"] == "sv-SE"
    assert second["integrations"] == {"All": False}


def test_unknown_fields_are_kept(kanal_app: App) -> None:
    post(kanal_app, "/v1/track", {**TRACK, "custom": {"a": [1, 2]}}, key=kanal_app.keys["secret"])
    assert kanal_app.events()[0]["body"]["custom"] == {"a": [1, 2]}


def test_partly_invalid_batch_stores_valid_and_keeps_invalid(kanal_app: App) -> None:
    body = {"batch": [
        {"type": "track", "userId": "u", "event": "Good"},
        {"type": "track", "userId": "u"},                      # no event name
        {"type": "nonsense", "userId": "u"},
        {"type": "identify"},                                  # no identity
        "not an object",
    ]}
    r = post(kanal_app, "/v1/batch", body, key=kanal_app.keys["secret"])
    assert r.status_code == 200
    assert r.get_json() == {"success": True, "stored": 1, "duplicates": 0, "failed": 4}
    reasons = [row[0] for row in kanal_app.rows("SELECT reason FROM failed_events ORDER BY id")]
    assert reasons == [
        "track needs an event name (event)",
        "type must be one of alias, group, identify, page, screen, track, not 'nonsense'",
        "userId or anonymousId is required",
        "a message must be a JSON object",
    ]


def test_invalid_single_event_is_400_and_kept(kanal_app: App) -> None:
    r = post(kanal_app, "/v1/track", {"userId": "u"}, key=kanal_app.keys["secret"])
    assert r.status_code == 400
    assert r.get_json() == {"code": "invalid_message",
                            "message": "track needs an event name (event)"}
    assert kanal_app.rows("SELECT reason, key_kind FROM failed_events") == [
        ("track needs an event name (event)", "secret")]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _bomb() -> bytes:
    return gzip.compress(b'{"batch": [' + b" " * (20 * 1024 * 1024) + b"]}")


def _hostile() -> list[tuple[str, str, dict[str, str], bytes | None, Any, int, str]]:
    big = "x" * (33 * 1024)
    return [
        # name, path, headers, raw body (None: json of body), body, status, code
        ("malformed json", "/v1/track", {}, b"{not json", None, 400, "invalid_json"),
        ("json not an object", "/v1/track", {}, b"[1, 2]", None, 400, "invalid"),
        ("not utf-8", "/v1/track", {}, b'{"userId": "\xff"}', None, 400, "invalid_json"),
        ("NaN", "/v1/track", {}, b'{"userId":"u","event":"E","properties":{"v":NaN}}', None,
         400, "invalid_json"),
        ("Infinity", "/v1/track", {}, b'{"userId":"u","event":"E","p":-Infinity}', None,
         400, "invalid_json"),
        ("1e400", "/v1/track", {}, b'{"userId":"u","event":"E","p":1e400}', None,
         400, "bad_number"),
        ("huge integer", "/v1/track", {}, b'{"userId":"u","event":"E","p":' + b"9" * 30 + b"}",
         None, 400, "bad_number"),
        ("5000-digit integer", "/v1/track", {}, b'{"userId":"u","event":"E","p":'
         + b"9" * 5000 + b"}", None, 400, "invalid_json"),
        ("lone surrogate", "/v1/track", {}, b'{"userId":"\\ud800","event":"E"}', None,
         400, "bad_string"),
        ("lone surrogate key", "/v1/track", {}, b'{"userId":"u","event":"E",'
         b'"properties":{"\\udfff":1}}', None, 400, "bad_string"),
        ("deep nesting", "/v1/track", {}, None, {"userId": "u", "event": "E",
                                                  "properties": _nested(40)},
         400, "too_deep"),
        ("very deep nesting", "/v1/batch", {}, b"[" * 100_000 + b"]" * 100_000, None,
         400, "too_deep"),
        ("oversize message", "/v1/track", {}, None, {"userId": "u", "event": "E",
                                                      "properties": {"x": big}},
         413, "too_large"),
        ("oversize batch body", "/v1/batch", {}, None,
         {"batch": [{"type": "track", "userId": "u", "event": "E",
                     "properties": {"x": "y" * 20_000}}] * 30}, 413, "too_large"),
        ("too many events", "/v1/batch", {}, None,
         {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 2501},
         413, "batch_too_large"),
        ("gzip bomb", "/v1/batch", {"Content-Encoding": "gzip"}, _bomb(), None,
         413, "too_large"),
        ("broken gzip", "/v1/batch", {"Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip", None,
         400, "bad_encoding"),
        ("unknown encoding", "/v1/batch", {"Content-Encoding": "br"}, b"{}", None,
         400, "bad_encoding"),
        ("batch not a list", "/v1/batch", {}, None, {"batch": {"a": 1}}, 400, "invalid"),
        ("type mismatch", "/v1/track", {}, None, {"type": "page", "userId": "u"},
         400, "invalid_message"),
        ("no identity", "/v1/identify", {}, None, {"traits": {}}, 400, "invalid_message"),
        ("context not object", "/v1/page", {}, None, {"anonymousId": "a", "context": "x"},
         400, "invalid_message"),
        ("bad timestamp", "/v1/track", {}, None, {"userId": "u", "event": "E",
                                                   "timestamp": "yesterday"},
         400, "invalid_message"),
        ("unknown route", "/v1/nope", {}, None, {"userId": "u"}, 400, "unknown_route"),
        ("skew out of range", "/v1/track", {}, None,
         {"userId": "u", "event": "E", "timestamp": "1970-01-01T00:00:00Z",
          "sentAt": "9999-12-31T00:00:00Z"}, 400, "invalid_message"),
    ]


@pytest.mark.parametrize("name,path,headers,raw,body,status,code", _hostile(),
                         ids=[h[0] for h in _hostile()])
def test_hostile_inputs(kanal_app: App, name: str, path: str, headers: dict[str, str],
                        raw: bytes | None, body: Any, status: int, code: str) -> None:
    r = post(kanal_app, path, body, key=kanal_app.keys["secret"], headers=headers, raw=raw)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    assert r.get_json()["code"] == code
    assert r.get_json()["message"]
    assert kanal_app.events() == []


@pytest.mark.parametrize("headers,body,code", [
    ({}, {"userId": "u", "event": "E"}, "missing_key"),
    (basic("pk_nonsense"), {"userId": "u", "event": "E"}, "unknown_key"),
    ({}, {"userId": "u", "event": "E", "writeKey": "sk_nonsense"}, "unknown_key"),
    ({}, {"userId": "u", "event": "E", "writeKey": 42}, "missing_key"),
    ({"Authorization": "Digest abc"}, {"userId": "u", "event": "E"}, "missing_key"),
])
def test_missing_or_unknown_key_is_401(kanal_app: App, headers: dict[str, str],
                                       body: dict[str, Any], code: str) -> None:
    r = post(kanal_app, "/v1/track", body, headers=headers)
    assert r.status_code == 401
    assert r.get_json()["code"] == code
    assert kanal_app.events() == []
    assert kanal_app.rows("SELECT count(*) FROM failed_events") == [(0,)]


def test_admin_key_cannot_send_events(kanal_app: App) -> None:
    r = post(kanal_app, "/v1/track", TRACK, key=kanal_app.keys["admin"])
    assert r.status_code == 401
    assert r.get_json()["code"] == "wrong_key_kind"


def test_revoked_key_is_refused(kanal_app: App) -> None:
    from kanal_collector.store.keys import revoke_key

    runtime = kanal_app.app.extensions["kanal"]
    revoke_key(runtime.db.conn(), kanal_app.keys["public"], 0)
    runtime.keys._keys.clear()  # the cache would notice within its TTL anyway
    r = post(kanal_app, "/v1/track", TRACK, key=kanal_app.keys["public"])
    assert r.status_code == 401


def test_batch_with_mixed_keys_keeps_foreign_items_apart(kanal_app: App) -> None:
    secret, public = kanal_app.keys["secret"], kanal_app.keys["public"]
    body = {"writeKey": public, "batch": [
        {"type": "track", "anonymousId": "a", "event": "Mine"},
        {"type": "track", "anonymousId": "a", "event": "Same key", "writeKey": public},
        {"type": "track", "userId": "u", "event": "Theirs", "writeKey": secret},
    ]}
    r = post(kanal_app, "/v1/batch", body)
    assert r.status_code == 200
    assert r.get_json()["failed"] == 1
    events = kanal_app.events()
    assert [e["event"] for e in events] == ["Mine", "Same key"]
    assert {e["key_kind"] for e in events} == {"public"}
    assert kanal_app.rows("SELECT reason FROM failed_events") == [
        ("writeKey differs from the batch's key",)]


def test_malformed_json_from_known_key_is_kept_in_failed_events(kanal_app: App) -> None:
    r = post(kanal_app, "/v1/track", None, key=kanal_app.keys["secret"], raw=b"{oops")
    assert r.status_code == 400
    [(reason, body)] = kanal_app.rows("SELECT reason, body FROM failed_events")
    assert reason.startswith("invalid JSON")
    assert body == "{oops"


def test_rate_limit_answers_429_with_retry_after(tmp_path: Any) -> None:
    from kanal_testing import make_app

    from kanal_collector.app import close_app

    env = make_app(tmp_path / "k.db", rate_limit=1.0, rate_burst=2.0)
    try:
        statuses = [post(env, "/v1/track", TRACK, key=env.keys["secret"]).status_code
                    for _ in range(3)]
        assert statuses == [200, 200, 429]
        r = post(env, "/v1/track", TRACK, key=env.keys["secret"])
        assert r.headers["Retry-After"] == "1"
        assert r.get_json()["code"] == "rate_limited"
    finally:
        close_app(env.app)


def test_cors_on_ingest_never_on_admin(kanal_app: App) -> None:
    pre = kanal_app.client.options("/v1/batch", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in pre.headers
    r = post(kanal_app, "/v1/track", {"userId": "u"}, key=kanal_app.keys["public"])
    assert r.headers["Access-Control-Allow-Origin"] == "*"  # errors too
    admin = kanal_app.client.get("/api/events", headers={
        "Origin": "https://evil.example",
        "Authorization": f"Bearer {kanal_app.keys['admin']}"})
    assert admin.status_code == 200
    assert "Access-Control-Allow-Origin" not in admin.headers


def test_enrichment_user_agent_ip_and_campaign(kanal_app: App) -> None:
    ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
    body = {"anonymousId": "a", "context": {"page": {
        "url": "https://shop.example/p?utm_source=mail&utm_medium=email&utm_campaign=fall"}}}
    post(kanal_app, "/v1/page", body, key=kanal_app.keys["public"],
         headers={"User-Agent": ua})
    [event] = kanal_app.events()
    context = event["body"]["context"]
    assert context["campaign"] == {"source": "mail", "medium": "email", "name": "fall"}
    assert context["kanal"]["browser"] == "Chrome"
    assert context["kanal"]["device"] == "desktop"
    assert context["kanal"]["bot"] is False
    assert context["ip"] == "127.0.0.1"
    assert event["origin"] == "web"


def test_unparseable_page_url_gives_no_campaign(kanal_app: App) -> None:
    body = {"anonymousId": "a", "context": {"page": {"url": "http://[bad?utm_source=x"}}}
    r = post(kanal_app, "/v1/page", body, key=kanal_app.keys["public"])
    assert r.status_code == 200
    assert "campaign" not in kanal_app.events()[0]["body"]["context"]


def test_public_key_cannot_claim_ip_or_server_fields(kanal_app: App) -> None:
    body = {"anonymousId": "a", "event": "E",
            "context": {"ip": "8.8.8.8", "kanal": {"bot": True}, "origin": "store"}}
    post(kanal_app, "/v1/track", body, key=kanal_app.keys["public"])
    [event] = kanal_app.events()
    assert event["body"]["context"]["ip"] == "127.0.0.1"
    assert event["body"]["context"]["kanal"]["bot"] is False
    assert event["origin"] == "web"


def test_app_library_gives_app_origin(kanal_app: App) -> None:
    body = {"anonymousId": "a", "event": "E",
            "context": {"library": {"name": "analytics-ios"}, "device": {"type": "ios"}}}
    post(kanal_app, "/v1/track", body, key=kanal_app.keys["public"])
    assert kanal_app.events()[0]["origin"] == "app"


def test_user_hash_verifies_a_browser_identify(kanal_app: App) -> None:
    import hashlib
    import hmac

    secret = kanal_app.keys["secret"]
    good = hmac.new(secret.encode(), b"u42", hashlib.sha256).hexdigest()
    for user_hash in (good, "0" * 64, None):
        context = {"userHash": user_hash} if user_hash else {}
        post(kanal_app, "/v1/identify", {"userId": "u42", "anonymousId": "a",
                                         "traits": {"email": "a@b.se"}, "context": context},
             key=kanal_app.keys["public"])
    events = kanal_app.events()
    assert [e["verified"] for e in events] == [1, 0, 0]
    assert all("userHash" not in e["body"]["context"] for e in events)


def test_settings_document_points_back_here(kanal_app: App) -> None:
    key = kanal_app.keys["public"]
    r = kanal_app.client.get(f"/v1/projects/{key}/settings", base_url="https://t.example")
    assert r.status_code == 200
    segment = r.get_json()["integrations"]["Segment.io"]
    assert segment == {**segment, "apiKey": key, "apiHost": "t.example/v1", "protocol": "https"}
    assert kanal_app.client.get("/v1/projects/nope/settings").status_code == 401


def test_health_ready_and_openapi(kanal_app: App) -> None:
    assert kanal_app.client.get("/healthz").get_json() == {"status": "ok"}
    assert kanal_app.client.get("/readyz").status_code == 200
    doc = kanal_app.client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/track", "/v1/batch", "/v1/identify"} <= set(doc["paths"])


def test_readyz_is_503_when_the_database_cannot_be_written(kanal_app: App) -> None:
    from kanal_testing import POSTGRES, connect_to

    from kanal_collector.store.simulate import open_readonly

    runtime = kanal_app.app.extensions["kanal"]
    readonly = connect_to(kanal_app.db) if POSTGRES else open_readonly(kanal_app.db)
    if POSTGRES:
        readonly.execute("SET default_transaction_read_only = on")
    runtime.db._local.conn = readonly
    try:
        r = kanal_app.client.get("/readyz")
        assert r.status_code == 503
        assert r.get_json()["status"] == "unavailable"
    finally:
        runtime.db._local.conn = None
        readonly.close()


def test_storage_failure_is_503_and_never_200(kanal_app: App) -> None:
    from kanal_collector.errors import StorageError

    runtime = kanal_app.app.extensions["kanal"]

    def broken(rows: Any, failed: Any = ()) -> int:
        raise StorageError("disk full")

    runtime.writer.write = broken
    r = post(kanal_app, "/v1/track", TRACK, key=kanal_app.keys["secret"])
    assert r.status_code == 503
    assert r.get_json()["code"] == "unavailable"


def test_admin_api_requires_admin_key(kanal_app: App) -> None:
    assert kanal_app.client.get("/api/events").status_code == 401
    for kind in ("public", "secret"):
        r = kanal_app.client.get("/api/events",
                                 headers={"Authorization": f"Bearer {kanal_app.keys[kind]}"})
        assert r.status_code == 401
    post(kanal_app, "/v1/track", TRACK, key=kanal_app.keys["secret"])
    r = kanal_app.client.get("/api/events?limit=5",
                             headers={"Authorization": f"Bearer {kanal_app.keys['admin']}"})
    assert r.status_code == 200
    assert r.get_json()["total"] == 1
    assert r.get_json()["events"][0]["event"] == "Product Added"
    bad = kanal_app.client.get("/api/events?limit=abc",
                               headers={"Authorization": f"Bearer {kanal_app.keys['admin']}"})
    assert bad.status_code == 400


def test_unknown_paths_and_methods_answer_json(kanal_app: App) -> None:
    r = kanal_app.client.get("/nope")
    assert r.status_code == 404
    assert r.get_json()["code"] == "not_found"
    r = kanal_app.client.get("/v1/track")
    assert r.status_code == 405
    assert r.get_json()["code"]


def test_events_of_a_forgotten_person_are_not_stored(kanal_app: App) -> None:
    from kanal_collector.profiles.privacy import forget

    runtime = kanal_app.app.extensions["kanal"]
    forget(runtime.db.conn(), "gone@example.com", 0)
    forget(runtime.db.conn(), "u-gone", 0)
    runtime.suppressions._expires = 0.0  # re-read now instead of within two seconds
    secret = kanal_app.keys["secret"]
    r = post(kanal_app, "/v1/identify", {"userId": "u-gone"}, key=secret)
    assert r.status_code == 200 and r.get_json()["stored"] == 0
    body = {"batch": [
        {"type": "identify", "userId": "u2", "traits": {"email": " Gone@Example.com "}},
        {"type": "track", "anonymousId": "a", "event": "E",
         "context": {"traits": {"email": "gone@example.com"}}},
        {"type": "track", "userId": "u-kept", "event": "E"},
    ]}
    r = post(kanal_app, "/v1/batch", body, key=secret)
    assert r.status_code == 200
    assert [e["user_id"] for e in kanal_app.events()] == ["u-kept"]
