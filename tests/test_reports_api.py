"""The reports admin API (/api/reports/…, /api/costs) and report windows."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kanal_testing import App

from kanal_collector.app import build_processor
from kanal_collector.clock import utc_iso
from kanal_collector.reports import views
from kanal_collector.reports.window import WindowError, parse_duration, parse_window

NOW_MS = 1_790_000_000_000
DAY = 86_400_000


# --- windows -----------------------------------------------------------------------


@pytest.mark.parametrize(("since", "until", "expected"), [
    (None, None, (NOW_MS - 30 * DAY, NOW_MS)),
    ("7d", None, (NOW_MS - 7 * DAY, NOW_MS)),
    ("12h", "1h", (NOW_MS - 12 * 3_600_000, NOW_MS - 3_600_000)),
    ("2w", None, (NOW_MS - 14 * DAY, NOW_MS)),
    ("90m", None, (NOW_MS - 90 * 60_000, NOW_MS)),
    ("2026-01-01", "2026-02-01", (1_767_225_600_000, 1_769_904_000_000)),
    ("2026-01-01T12:00:00Z", "2026-01-01T14:00:00+01:00",
     (1_767_268_800_000, 1_767_268_800_000 + 3_600_000)),
    ("2026-01-01T12:00:00", None, (1_767_268_800_000, NOW_MS)),
])
def test_parse_window(since: str | None, until: str | None,
                      expected: tuple[int, int]) -> None:
    assert parse_window(since, until, now_ms=NOW_MS) == expected


@pytest.mark.parametrize(("since", "until", "param", "message"), [
    ("30x", None, "since", "is neither a duration"),
    ("yesterday", None, "since", "is neither a duration"),
    ("0d", None, "since", "greater than zero"),
    ("7d", "2026-13-01", "until", "is neither a duration"),
    ("2026-02-01", "2026-01-01", "since", "must be before until"),
    ("   ", None, "since", "must not be empty"),
    ("2026-01-01T12:00:00Z", "2026-01-01T13:00:00+01:00", "since", "must be before until"),
])
def test_parse_window_errors_name_the_parameter(since: str, until: str | None, param: str,
                                                message: str) -> None:
    with pytest.raises(WindowError, match=message) as info:
        parse_window(since, until, now_ms=NOW_MS)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}: ")


def test_parse_duration() -> None:
    assert parse_duration("30d") == 30 * DAY
    assert parse_duration("7D") == 7 * DAY
    with pytest.raises(WindowError, match="lookback: '3 days' is not a duration"):
        parse_duration("3 days", param="lookback")


# --- API ---------------------------------------------------------------------------


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def admin(env: App) -> dict[str, str]:
    """The admin key's Authorization header."""
    return {"Authorization": f"Bearer {env.keys['admin']}"}


def seed(env: App) -> None:
    """Three people: two buy after a UTM visit, one only browses; then process."""
    now = env.clock.now()
    batch: list[dict[str, Any]] = []
    for i, (source, revenue) in enumerate([("newsletter", 40.0), ("google", 60.5)]):
        user = f"buyer{i}"
        batch.append({"type": "page", "userId": user, "name": "Home",
                      "timestamp": utc_iso(now - 3 * 86_400 + i),
                      "context": {"campaign": {"source": source, "medium": "email" if i == 0
                                               else "cpc", "name": f"spring{i}"},
                                  "page": {"url": f"https://shop.example/?utm_source={source}"}}})
        batch.append({"type": "track", "userId": user, "event": "Order Completed",
                      "timestamp": utc_iso(now - 2 * 86_400 + i),
                      "properties": {"order_id": f"o{i}", "revenue": revenue,
                                     "currency": "EUR"}})
    batch.append({"type": "page", "anonymousId": "browser", "name": "Home",
                  "timestamp": utc_iso(now - 86_400)})
    r = env.client.post("/v1/batch", json={"batch": batch}, headers=_basic(env.keys["secret"]))
    assert r.status_code == 200, r.get_json()
    processor = build_processor(env.app.extensions["kanal"].db)
    try:
        processor.catch_up()
    finally:
        processor.close()


REPORTS = ["/api/reports/overview", "/api/reports/attribution", "/api/reports/journeys",
           "/api/reports/journeys/welcome", "/api/reports/experiments", "/api/costs"]


def test_reports_need_an_admin_key(kanal_app: App) -> None:
    secret = {"Authorization": f"Bearer {kanal_app.keys['secret']}"}
    for path in REPORTS:
        assert kanal_app.client.get(path).status_code == 401, path
        r = kanal_app.client.get(path, headers=secret)
        assert r.status_code == 401, path
        assert r.get_json()["code"] == "unknown_key"
    for method in ("put", "delete"):
        r = getattr(kanal_app.client, method)("/api/costs/channel/email", json={"amount": 1},
                                               headers=secret)
        assert r.status_code == 401


def test_overview_matches_the_report_function(kanal_app: App) -> None:
    seed(kanal_app)
    r = kanal_app.client.get("/api/reports/overview?since=7d", headers=admin(kanal_app))
    assert r.status_code == 200
    body = r.get_json()
    assert "Access-Control-Allow-Origin" not in r.headers
    assert body["totals"]["conversions"] == 2
    assert body["totals"]["revenue"] == 100.5
    runtime = kanal_app.app.extensions["kanal"]
    assert body == views.overview_view(runtime.db.conn(), runtime.config,
                                       since_ms=NOW_MS - 7 * DAY, until_ms=NOW_MS)
    # a window without the orders
    r = kanal_app.client.get("/api/reports/overview?since=1d", headers=admin(kanal_app))
    assert r.get_json()["totals"]["conversions"] == 0


def test_attribution_models_settings_and_costs(kanal_app: App) -> None:
    seed(kanal_app)
    headers = admin(kanal_app)
    r = kanal_app.client.put("/api/costs/campaign/spring0",
                             json={"amount": 20, "currency": "EUR"}, headers=headers)
    assert r.status_code == 200, r.get_json()
    r = kanal_app.client.get("/api/reports/attribution?since=30d&models=first_touch,linear"
                             "&lookback=10d&half_life=2d&goal=Order%20Completed",
                             headers=headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert list(body["models"]) == ["first_touch", "linear"]
    assert body["lookback_ms"] == 10 * DAY and body["half_life_ms"] == 2 * DAY
    assert body["conversions"] == 2 and body["revenue"] == 100.5
    campaigns = {row["key"]: row for row in body["models"]["first_touch"]["campaign"]}
    assert campaigns["spring0"]["revenue"] == 40.0
    assert campaigns["spring0"]["cost"] == 20.0
    assert campaigns["spring0"]["roas"] == 2.0
    # a lookback too short for the visits three days before leaves them unattributed
    r = kanal_app.client.get("/api/reports/attribution?lookback=1h", headers=headers)
    assert r.get_json()["unattributed"]["conversions"] == 2


BAD_PARAMETERS = [
    ("attribution?since=30x", "since"),
    ("attribution?until=tomorrow", "until"),
    ("attribution?since=2026-02-01&until=2026-01-01", "since"),
    ("attribution?models=first_touch,best_guess", "models"),
    ("attribution?lookback=forever", "lookback"),
    ("attribution?half_life=-1d", "half_life"),
    ("overview?since=soon", "since"),
    ("journeys?until=2026-99-01", "until"),
    ("journeys/welcome?since=x", "since"),
    ("experiments?since=1y", "since"),
]


def test_bad_parameters_are_400s_naming_them(kanal_app: App) -> None:
    for query, param in BAD_PARAMETERS:
        r = kanal_app.client.get(f"/api/reports/{query}", headers=admin(kanal_app))
        assert r.status_code == 400, query
        body = r.get_json()
        assert body["code"] == "invalid_parameter"
        assert body["message"].startswith(f"{param}: "), (query, body)


def test_journeys_and_unknown_journey(kanal_app: App) -> None:
    r = kanal_app.client.get("/api/reports/journeys", headers=admin(kanal_app))
    assert r.status_code == 200
    assert r.get_json()["journeys"] == []
    r = kanal_app.client.get("/api/reports/journeys/nope", headers=admin(kanal_app))
    assert r.status_code == 404
    assert r.get_json() == {"code": "not_found", "message": "no journey 'nope'"}
    r = kanal_app.client.get("/api/reports/experiments?journey=nope", headers=admin(kanal_app))
    assert r.status_code == 404
    assert r.get_json() == {"code": "not_found", "message": "no journey 'nope'"}


def test_costs_put_list_delete(kanal_app: App) -> None:
    headers = admin(kanal_app)
    r = kanal_app.client.put("/api/costs/channel/email", json={"amount": 120.5,
                                                               "currency": "EUR"},
                             headers=headers)
    assert r.status_code == 200
    listed = kanal_app.client.get("/api/costs", headers=headers).get_json()["costs"]
    assert [(c["dimension"], c["key"], c["amount"], c["currency"], c["source"])
            for c in listed] == [("channel", "email", 120.5, "EUR", "api")]
    r = kanal_app.client.put("/api/costs/channel/email", json={"amount": 99},
                             headers=headers)
    assert [c["amount"] for c in r.get_json()["costs"]] == [99.0]
    r = kanal_app.client.delete("/api/costs/channel/email", headers=headers)
    assert r.status_code == 200 and r.get_json()["costs"] == []
    r = kanal_app.client.delete("/api/costs/channel/email", headers=headers)
    assert r.status_code == 404


BAD_COSTS: list[tuple[str, Any, str]] = [
    ("/api/costs/channel/email", {"amount": "lots"}, "amount"),
    ("/api/costs/channel/email", {"amount": True}, "amount"),
    ("/api/costs/channel/email", {"amount": 5, "currency": 3}, "currency"),
    ("/api/costs/channel/email", ["amount", 5], "JSON object"),
    ("/api/costs/planet/mars", {"amount": 5}, "dimension"),
    ("/api/costs/channel/email", {"amount": -5}, "amount"),
]


def test_bad_costs_are_400s(kanal_app: App) -> None:
    for path, body, fragment in BAD_COSTS:
        r = kanal_app.client.put(path, json=body, headers=admin(kanal_app))
        assert r.status_code == 400, body
        assert fragment in r.get_json()["message"], (body, r.get_json())
    assert kanal_app.client.get("/api/costs", headers=admin(kanal_app)).get_json() == \
        {"costs": []}


@pytest.mark.parametrize("package", ["kanal_collector.reports", "kanal_collector.dashboard"])
def test_public_names_are_sorted_and_resolve(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None
