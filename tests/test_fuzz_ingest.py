"""Fuzzing the ingest routes: arbitrary bodies never give a 5xx; every message the
OpenAPI document allows is stored."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from kanal_testing import App

from kanal_collector.openapi import openapi_document

ALLOWED = {200, 400, 401, 413}
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias",
                                 "x", ""]) | json_values,
        "userId": st.text(max_size=10) | json_values,
        "anonymousId": st.text(max_size=10) | json_values,
        "event": st.text(max_size=10) | json_values,
        "messageId": st.text(max_size=10) | json_values,
        "timestamp": st.text(max_size=30) | json_values,
        "sentAt": st.text(max_size=30) | json_values,
        "context": json_values, "properties": json_values, "traits": json_values,
        "groupId": json_values, "previousId": json_values,
    },
)


@FUZZ
@given(path=st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "t",
                             "p", "batch", "b"]),
       body=message_like | json_values,
       raw=st.none() | st.binary(max_size=200))
def test_any_body_gets_a_4xx_or_200_never_5xx(kanal_app: App, path: str, body: Any,
                                               raw: bytes | None) -> None:
    if path in ("batch", "b") and isinstance(body, dict):
        body = {"batch": [body, body]}
    data = raw if raw is not None else json.dumps(body).encode()
    r = kanal_app.client.post(f"/v1/{path}", data=data, auth=(kanal_app.keys["secret"], ""),
                              headers={"Content-Type": "application/json"})
    assert r.status_code in ALLOWED, r.get_data(as_text=True)
    payload = r.get_json()
    if r.status_code != 200:
        assert set(payload) == {"code", "message"}


_SCALARS = {"anyOf": [{"type": "string", "maxLength": 20}, {"type": "boolean"},
                      {"type": "null"}, {"type": "number", "minimum": -1e15, "maximum": 1e15}]}


def _bounded(node: Any) -> Any:
    """The document's schema with free-form objects made finite for generation: the
    collector's own limits (64-bit integers, nesting) are outside what JSON Schema says."""
    if isinstance(node, dict):
        if node == {"type": "object"}:
            return {"type": "object", "additionalProperties": _SCALARS, "maxProperties": 4}
        out = {k: _bounded(v) for k, v in node.items()}
        if out.get("additionalProperties") is True:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_bounded(v) for v in node]
    return node


def _schema(name: str) -> dict[str, Any]:
    doc = openapi_document()
    schema = dict(doc["components"]["schemas"][name])
    schema["$defs"] = doc["components"]["schemas"]
    text = json.dumps(schema).replace("#/components/schemas/", "#/$defs/")
    return _bounded(json.loads(text))  # type: ignore[no-any-return]


@settings(FUZZ, max_examples=60)
@given(message=st.sampled_from(["Track", "Identify", "Page", "Screen", "Group", "Alias"])
       .flatmap(lambda name: st.tuples(st.just(name), from_schema(_schema(name)))))
def test_every_message_the_openapi_document_allows_is_stored(kanal_app: App,
                                                             message: Any) -> None:
    name, body = message
    for field in ("timestamp", "sentAt", "originalTimestamp"):
        body.pop(field, None)  # generated date-times may be outside what clients send
    body.pop("writeKey", None)
    before = len(kanal_app.events())
    r = kanal_app.client.post(f"/v1/{name.lower()}", data=json.dumps(body),
                              auth=(kanal_app.keys["secret"], ""),
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 200, (body, r.get_json())
    stored = r.get_json()["stored"]
    assert len(kanal_app.events()) == before + stored
