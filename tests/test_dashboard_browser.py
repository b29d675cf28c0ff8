"""The dashboard in headless Chromium against a real collector process on loopback.

Events go in through /v1 with the secret key (pages with referrers, orders after UTM
visits); once the processor has counted them, the browser signs in with the admin key,
opens every page, and what the pages show is compared with /api/reports fetched with the
Bearer key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from kanal_testing import Collector, poll, start_collector

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORDERS = [("newsletter", "email", "spring", 40.0), ("google", "cpc", "brand", 25.5),
          ("newsletter", "email", "spring", 12.0), ("facebook", "social", "retarget", 80.0)]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def seed(collector: Collector) -> None:
    """Visits with UTM and referrers, then orders, sent by a backend with the secret key."""
    now = datetime.now(UTC)
    batch: list[dict[str, Any]] = []
    for i, (source, medium, campaign, revenue) in enumerate(ORDERS):
        user = f"buyer{i}"
        url = (f"https://shop.example/?utm_source={source}&utm_medium={medium}"
               f"&utm_campaign={campaign}")
        batch.append({"type": "page", "userId": user, "name": "Landing",
                      "timestamp": _iso(now - timedelta(hours=5, minutes=i)),
                      "context": {"page": {"url": url, "referrer": f"https://{source}.com/"},
                                  "campaign": {"source": source, "medium": medium,
                                               "name": campaign}}})
        batch.append({"type": "track", "userId": user, "event": "Order Completed",
                      "timestamp": _iso(now - timedelta(hours=2, minutes=i)),
                      "properties": {"order_id": f"o{i}", "revenue": revenue,
                                     "currency": "EUR"}})
    for i in range(6):
        batch.append({"type": "page", "anonymousId": f"visitor{i}", "name": "Home",
                      "timestamp": _iso(now - timedelta(hours=1, minutes=i)),
                      "context": {"page": {"url": "https://shop.example/",
                                           "referrer": "https://www.bing.com/"}}})
    r = requests.post(f"{collector.url}/v1/batch", json={"batch": batch},
                      auth=(collector.secret_key, ""), timeout=10)
    assert r.status_code == 200, r.text


def api(collector: Collector, path: str) -> Any:
    """GET an admin API path with the Bearer key."""
    r = requests.get(f"{collector.url}{path}", timeout=10,
                     headers={"Authorization": f"Bearer {collector.admin_key}"})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """A collector with the seed data processed."""
    where = Path(tmp_path_factory.mktemp("dash"))
    # an ads audience (a CSV file) for the Audiences page; journeys alone would fill it
    (where / "kanal.toml").write_text('[audiences.buyers]\ndestination = "csv"\n'
                                      'path = "buyers.csv"\n', encoding="utf-8")
    collector = start_collector(where / "kanal.db")
    try:
        seed(collector)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if api(collector, "/api/reports/overview?since=1d")["totals"]["conversions"] \
                    == len(ORDERS):
                break
            time.sleep(0.1)
        yield collector
    finally:
        collector.stop()


def visible_bars(page: Any) -> list[float]:
    """data-value of every drawn bar that has a visible size on screen."""
    values: list[float] = page.eval_on_selector_all(
        "svg.chart rect.bar",
        "els => els.filter(e => { const b = e.getBoundingClientRect();"
        " return b.width > 0 && b.height > 0; }).map(e => Number(e.dataset.value))")
    return values


def kpis(page: Any) -> dict[str, float]:
    """The KPI tiles' values."""
    found: dict[str, float] = page.eval_on_selector_all(
        "[data-kpi]", "els => Object.fromEntries(els.map(e => [e.dataset.kpi,"
        " Number(e.dataset.value)]))")
    return found


def test_sign_in_and_every_page(seeded: Collector, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    # every console error but the 401 of the deliberately wrong key (a CSP violation
    # is one), and every script error
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and "status of 401" not in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{seeded.url}/dashboard/attribution")
        assert page.url.startswith(f"{seeded.url}/dashboard/login")
        page.fill("#key", "ak_not_a_key")
        page.click("button[type=submit]")
        assert "That is not a valid admin key." in page.inner_text("main")
        page.fill("#key", seeded.admin_key)
        page.click("button[type=submit]")
        page.wait_for_url(f"{seeded.url}/dashboard/attribution")
        cookie = next(c for c in context.cookies() if c["name"] == "kanal_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/dashboard"
        assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

        # attribution: tiles and every model's revenue per channel match the API
        expected = api(seeded, "/api/reports/attribution?since=30d")
        shown = kpis(page)
        assert shown["conversions"] == expected["conversions"] == len(ORDERS)
        assert shown["revenue"] == expected["revenue"] == sum(o[3] for o in ORDERS)
        for model, by_dim in expected["models"].items():
            for row in by_dim["channel"]:
                cell = page.get_attribute(
                    f'table[data-dimension="channel"] tr[data-key="{row["key"]}"] '
                    f'td[data-model="{model}"][data-field="revenue"]', "data-value")
                assert cell is not None and float(cell) == row["revenue"], (model, row)
        assert [b for b in visible_bars(page) if b > 0]

        # overview: tiles and the stacked events chart match the API
        page.click("nav >> text=Overview")
        page.wait_for_url(f"{seeded.url}/dashboard/?since=30d")
        overview = api(seeded, "/api/reports/overview?since=30d")
        shown = kpis(page)
        for name in ("events", "active_profiles", "profiles", "conversions", "revenue"):
            assert shown[name] == overview["totals"][name], name
        bars = page.eval_on_selector_all(
            "svg.for-desk.chart-stacked[aria-label='Events per day by origin'] rect.bar",
            "els => els.map(e => Number(e.dataset.value))")
        assert sum(bars) == overview["totals"]["events"] > 0
        assert all(b > 0 for b in visible_bars(page))

        # the window picker
        page.click("text=last 7d")
        page.wait_for_url(f"{seeded.url}/dashboard/?since=7d")
        assert kpis(page)["conversions"] == len(ORDERS)

        for path, title in [("/dashboard/journeys", "Journeys"),
                            ("/dashboard/experiments", "Experiments"),
                            ("/dashboard/deliverability", "Deliverability"),
                            ("/dashboard/predict", "Predictions"),
                            ("/dashboard/audiences", "Audiences"),
                            ("/dashboard/costs", "Costs")]:
            response = page.goto(f"{seeded.url}{path}")
            assert response is not None and response.status == 200
            assert page.inner_text("h1") == title
            if title == "Predictions":  # four orders: far from enough for the models
                assert "Not enough data yet: no fit yet; 4 orders so far" in \
                    page.inner_text("#not-enough")

        # audiences: the worker's first round shows; Sync now (a CSRF form) starts another
        page.goto(f"{seeded.url}/dashboard/audiences")
        assert page.inner_text("h1") == "Audiences"
        assert poll(lambda: api(seeded, "/api/audiences/buyers")["lastSync"], 30)
        page.reload()
        assert page.get_attribute('tr[data-audience="buyers"]', "data-status") == "ok"
        page.click('tr[data-audience="buyers"] button[type=submit]')
        page.wait_for_url(f"{seeded.url}/dashboard/audiences?message=*")
        assert "a sync was asked for" in page.inner_text("main")
        assert poll(lambda: [r for r in api(seeded, "/api/audiences/buyers")["runs"]
                             if r["reason"] == "request"], 30)

        page.goto(f"{seeded.url}/dashboard/costs")
        # a cost set on the page shows up in the API and in attribution's ROAS
        page.select_option("select[name=dimension]", "campaign")
        page.fill("input[name=key]", "spring")
        page.fill("input[name=amount]", "13")
        page.click("form.cost button[type=submit]")
        page.wait_for_url(f"{seeded.url}/dashboard/costs")
        costs = api(seeded, "/api/costs")["costs"]
        assert [(c["dimension"], c["key"], c["amount"]) for c in costs] == \
            [("campaign", "spring", 13.0)]

        page.click("form.logout button")
        page.wait_for_url(f"{seeded.url}/dashboard/login")
        page.goto(f"{seeded.url}/dashboard/")
        assert page.url.startswith(f"{seeded.url}/dashboard/login")
        assert not [c for c in context.cookies() if c["name"] == "kanal_session"]
        assert problems == []  # no CSP violation, no script error
    finally:
        context.close()
