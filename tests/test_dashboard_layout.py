"""Every dashboard page, found by following its links, checked in headless Chromium at
1280 and 390 px wide against a shop with 90 days of history and long names
(layout_seed.py): no sideways scroll of the page, no two texts overlapping, every SVG
text inside its viewBox (layout_check.py). Full-page screenshots of each page at each
width are kept in $KANAL_TEST_ARTIFACTS (else under pytest's temporary directory).

The walk must reach every GET page the dashboard's blueprint has, so a page added later
is checked as soon as a link leads to it, and a page no link leads to fails here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from layout_check import artifacts_dir, problems, screenshot, walk
from layout_seed import CAMPAIGNS, JOURNEYS, seed, shop_config

from kanal_collector.store.keys import create_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (1280, 390)


class Site:
    """The seeded dashboard served over HTTP on a free loopback port."""

    def __init__(self, base: str, key: str, app: Any) -> None:
        self.base, self.key, self.app = base, key, app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from werkzeug.serving import make_server

    from kanal_collector.app import close_app, create_app

    env = seed(Path(tmp_path_factory.mktemp("shop")))
    key = create_key(env.conn, "admin", env.now_ms())
    app = create_app(shop_config(env), clock=env.clock)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", key, app)
    finally:
        server.shutdown()
        thread.join()
        close_app(app)
        env.close()


@pytest.fixture(scope="module")
def signed_in(site: Site, browser: Any) -> Iterator[Any]:
    """A browser context signed in to the dashboard."""
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    page.goto(f"{site.base}/dashboard/login")
    page.fill("#key", site.key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/dashboard/")
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def pages(site: Site, signed_in: Any) -> list[str]:
    """Every page the dashboard's links lead to."""
    return walk(signed_in, site.base)


def test_the_walk_reaches_every_page_of_the_dashboard(site: Site, pages: list[str]) -> None:
    adapter = site.app.url_map.bind("localhost")
    reached = {adapter.match(urlsplit(p).path, method="GET")[0] for p in pages}
    wanted = {rule.endpoint for rule in site.app.url_map.iter_rules()
              if rule.endpoint.startswith("dashboard.") and "GET" in (rule.methods or ())
              and rule.endpoint not in ("dashboard.static", "dashboard.login")}
    assert wanted - reached == set(), "pages no link leads to"
    longest = max(JOURNEYS, key=len)
    assert f"/dashboard/journeys/{longest}?since=90d" in pages


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_reads_well(site: Site, signed_in: Any, pages: list[str], width: int,
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    page = signed_in
    page.set_viewport_size({"width": width, "height": 900})
    where = artifacts_dir(Path(tmp_path_factory.getbasetemp()) / "dashboard-screenshots")
    found: dict[str, list[str]] = {}
    for url in pages:
        page.goto(site.base + url)
        screenshot(page, where, f"{width}px{url}")
        if trouble := problems(page):
            found[url] = trouble
    assert found == {}, f"screenshots in {where}"


def test_money_roas_steps_and_own_events_are_shown(site: Site, signed_in: Any) -> None:
    page = signed_in
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    page.goto(f"{site.base}/dashboard/attribution?since=90d")
    assert page.inner_text('[data-kpi="revenue"]').endswith(" EUR")
    roas = page.get_attribute(f'table[data-roas="campaign"] tr[data-key="{CAMPAIGNS[0]}"] '
                              'td[data-model="last_touch"]', "data-value")
    assert roas is not None and float(roas) > 0
    ticks = page.eval_on_selector_all(
        "svg[aria-label='Revenue credited per campaign, by model'] text.tick",
        "els => els.map(e => e.textContent)")
    assert ticks[0] == "0 EUR" and len(ticks) >= 3 and all(t.endswith(" EUR") for t in ticks)

    page.goto(f"{site.base}/dashboard/?since=90d")
    own = page.eval_on_selector_all("#own-events svg rect.bar",
                                    "els => els.map(e => e.dataset.series)")
    # deliveries (origin email) and segment entries (origin server) are Kanal's own
    assert set(own) == {"email", "server"}
    shop = page.eval_on_selector_all(
        "svg.for-desk[aria-label='Events per day by origin'] rect.bar",
        "els => els.map(e => Number(e.dataset.value))")
    assert sum(shop) == float(page.get_attribute('[data-kpi="events"]', "data-value") or 0)

    page.goto(f"{site.base}/dashboard/journeys/{JOURNEYS[0]}?since=90d")
    rows = page.eval_on_selector_all("#steps tr[data-step]", "els => els.map(e => e.dataset.step)")
    assert "subject_line_test_with_emoji_versus_plain_text" in rows
    assert "reminder_by_sms_to_the_mobile_number_on_file" in rows
    page.goto(f"{site.base}/dashboard/experiments?since=90d")
    assert "subject_line_test_with_emoji_versus_plain_text" in page.inner_text("h2")
