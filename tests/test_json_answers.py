"""Every JSON answer is valid JSON, whatever numbers the events carried.

"NaN", "Infinity" and friends are not numbers: they never reach revenue, and no answer
of any `/api` route (nor ingest's, nor the dashboard's embedded data) holds the bare
words NaN or Infinity, which strict parsers (browsers' JSON.parse) refuse. A
property-based test sends hostile numeric properties and parses every answer strictly.
"""

from __future__ import annotations

import base64
import json
import math
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kanal_testing import App, make_app

from kanal_collector.clock import utc_iso
from kanal_collector.journeys.timers import sync
from kanal_collector.jsonprovider import dumps_strict, finite
from kanal_collector.money import amount, order_revenue
from kanal_collector.store.db import transaction

HOSTILE_STRINGS = ["NaN", "nan", "-NaN", "Infinity", "-Infinity", "inf", "-inf", "+inf",
                   "1e309", "-1e309", "1e400", "0x1F", "1_000", "", " ", "12,50", "∞",
                   "١٢", "1e15", "1e16", "-0", "0.0000001", "9" * 400]
HOSTILE_NUMBERS = [0, -0.0, 1e308, -1e308, 1.7976931348623157e308, 5e-324,
                   9_223_372_036_854_775_807, -9_223_372_036_854_775_808, 10**15,
                   10**15 + 1, 123.456]

hostile = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
)
money_fields = st.fixed_dictionaries(
    {}, optional={"revenue": hostile, "total": hostile, "value": hostile,
                  "products": st.lists(st.fixed_dictionaries(
                      {}, optional={"price": hostile, "quantity": hostile}), max_size=3)})


def _no_constants(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_no_constants)


# --- the rules ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e309",
                                  "0x1F", "1_000", "", "twelve", "1e16"])
def test_these_are_not_amounts(text: str) -> None:
    assert amount(text) is None
    assert order_revenue({"revenue": text, "total": "7.5"}) == 7.5


@pytest.mark.parametrize(("value", "expected"), [
    ("12.50", 12.5), (" -3 ", -3.0), ("1e3", 1000.0), (".5", 0.5), (40, 40.0),
    (1e15, 1e15), (-1e15, -1e15), (True, None), (float("nan"), None), (float("inf"), None),
    (10**16, None), (10**400, None), (None, None), ([1], None),
])
def test_amount(value: Any, expected: float | None) -> None:
    assert amount(value) == expected


def test_a_sum_of_products_beyond_the_bound_is_not_money() -> None:
    products = [{"price": 1e15, "quantity": 1e15}, {"price": 2, "quantity": 3}]
    assert order_revenue({"products": products}) == 0.0
    assert order_revenue({"products": [{"price": "NaN"}, {"price": 4, "quantity": "2"}]}) == 8.0


def test_the_provider_writes_null_for_what_is_not_finite() -> None:
    assert dumps_strict({"a": [1.5, float("nan")], "b": float("-inf")}) == \
        '{"a": [1.5, null], "b": null}'
    assert finite((float("inf"), {"x": 2})) == [None, {"x": 2}]


# --- every route, hostile data ------------------------------------------------------

JOURNEY = """
    name: hostile
    trigger: {event: Product Added}
    entry: {rule: every_time}
    goal: {event: Order Completed, within: 7d}
    steps:
      - split:
          holdout: 20
          arms:
            - {name: a, weight: 50, steps: [{set_trait: {tried: "a"}}]}
            - {name: b, weight: 50, steps: [{exit: "b"}]}
"""
SEGMENTS = {"segments": [{"name": "spenders", "all": [{"computed": "revenue", "gt": 10}]}]}


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> App:
    tmp = tmp_path_factory.mktemp("hostile")
    journeys = tmp / "journeys"
    journeys.mkdir()
    (journeys / "hostile.yaml").write_text(textwrap.dedent(JOURNEY), encoding="utf-8")
    app = make_app(tmp / "kanal.db", journeys_dir=journeys)
    runtime = app.app.extensions["kanal"]
    from kanal_collector.profiles.segments import parse_segments
    from kanal_collector.store import segments as segment_store

    with transaction(runtime.db.conn()) as conn:
        sync(conn, journeys, int(app.clock.now() * 1000))
        segment_store.put_segment_definitions(
            conn, {s.name: s.definition for s in parse_segments(SEGMENTS)}, 0)
    return app


def _routes(env: App, names: dict[str, str]) -> list[str]:
    """Every GET route under /api, with its path parameters filled in."""
    paths = []
    for rule in env.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or "GET" not in (rule.methods or set()):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: names[m.group(1)], rule.rule)
        paths.append(path)
    return sorted(paths)


def _send(env: App, n: int, properties: dict[str, Any], traits: dict[str, Any]) -> None:
    now = env.clock.now()
    user = f"u{n % 5}"
    batch = [
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com",
                                                        **traits}},
        {"type": "page", "userId": user, "timestamp": utc_iso(now - 60),
         "context": {"campaign": {"source": "news", "medium": "email", "name": "c"}}},
        {"type": "track", "userId": user, "event": "Product Added", "properties": properties},
        {"type": "track", "userId": user, "event": "Order Completed",
         "properties": {"order_id": f"o{n}", **properties}},
    ]
    r = env.client.post("/v1/batch", json={"batch": batch}, headers=_basic(env.keys["secret"]))
    # Ingest may refuse a number JSON can't carry faithfully (beyond 64 bits): with JSON.
    assert r.status_code in (200, 400), r.get_data(as_text=True)
    assert isinstance(strict_loads(r.get_data()), dict)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(properties=money_fields, traits=st.dictionaries(
    st.sampled_from(["revenue", "score", "ltv"]), hostile, max_size=2),
       cost=st.sampled_from(["NaN", "Infinity", "-1", "1e400", "12.5"]))
def test_every_api_answer_is_strict_json(env: App, properties: dict[str, Any],
                                         traits: dict[str, Any], cost: str) -> None:
    n = env.rows("SELECT count(*) FROM events")[0][0]
    _send(env, n, properties, traits)
    env.process()
    admin = {"Authorization": f"Bearer {env.keys['admin']}"}
    r = env.client.put("/api/costs/channel/email", data=f'{{"amount": {cost}}}',
                       headers={**admin, "Content-Type": "application/json"})
    strict_loads(r.get_data())
    pid = env.rows("SELECT min(id) FROM profiles")[0][0]
    names = {"profile_id": str(pid), "name": "hostile", "product_id": "p1", "user": "u1",
             "address": "ann@example.com"}
    paths = _routes(env, names) + ["/api/segments/spenders/members",
                                   "/api/reports/experiments?journey=hostile",
                                   "/api/profiles/lookup?id=u1"]
    for path in paths:
        r = env.client.get(path, headers=admin)
        assert r.status_code in (200, 400, 404), (path, r.status_code)
        doc = strict_loads(r.get_data())
        assert isinstance(doc, dict), path
    for path in ("/dashboard/", "/dashboard/attribution", "/dashboard/experiments"):
        html = _dashboard(env, path)
        data = re.search(r'<script type="application/json" id="data">(.*?)</script>', html,
                         re.S)
        if data:
            strict_loads(data.group(1))
    overview = strict_loads(env.client.get("/api/reports/overview?since=30d",
                                           headers=admin).get_data())
    assert math.isfinite(overview["totals"]["revenue"])


def _dashboard(env: App, path: str) -> str:
    env.client.get("/dashboard/login")
    cookie = env.client.get_cookie("kanal_login", path="/dashboard")
    if env.client.get_cookie("kanal_session", path="/dashboard") is None:
        assert cookie is not None
        env.client.post("/dashboard/login", data={"key": env.keys["admin"],
                                                  "login_csrf": cookie.value})
    r = env.client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return r.get_data(as_text=True)


def test_nan_revenue_reaches_no_report(tmp_path: Path) -> None:
    """The issue's case: an order with revenue "NaN" made the attribution API answer NaN."""
    app = make_app(tmp_path / "kanal.db")
    at = utc_iso(app.clock.now() - 60)
    batch = [{"type": "page", "userId": "u", "timestamp": at, "context": {
        "campaign": {"source": "g", "medium": "cpc", "name": "c"}}},
        {"type": "track", "userId": "u", "event": "Order Completed", "timestamp": at,
         "properties": {"order_id": "o1", "revenue": "NaN", "total": "42"}}]
    assert app.client.post("/v1/batch", json={"batch": batch},
                           headers=_basic(app.keys["secret"])).status_code == 200
    app.process()
    admin = {"Authorization": f"Bearer {app.keys['admin']}"}
    doc = strict_loads(app.client.get("/api/reports/attribution", headers=admin).get_data())
    assert doc["revenue"] == 42.0
    profile = strict_loads(app.client.get("/api/profiles/lookup?id=u", headers=admin).get_data())
    assert profile["computed"]["revenue"] == 42.0
