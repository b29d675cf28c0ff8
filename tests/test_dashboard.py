"""The dashboard (/dashboard) through Flask's test client: sign-in, sessions, CSRF,
redirects, security headers, pages and their data, and the SVG chart helpers."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from kanal_testing import App
from test_reports_api import NOW_MS, admin, seed

from kanal_collector.dashboard import axes, charts
from kanal_collector.store.keys import create_key, revoke_key

PAGES = ["/dashboard/", "/dashboard/journeys", "/dashboard/attribution",
         "/dashboard/experiments", "/dashboard/costs", "/dashboard/journeys/welcome",
         "/dashboard/recommendations", "/dashboard/audiences"]


def login_token(env: App) -> str:
    """Open the sign-in form; the hidden double-submit token."""
    r = env.client.get("/dashboard/login")
    assert r.status_code == 200
    match = re.search(r'name="login_csrf" value="([^"]+)"', r.get_data(as_text=True))
    assert match is not None
    return match.group(1)


def sign_in(env: App, key: str | None = None, **extra: str) -> Any:
    """POST the sign-in form (with its token) and return the response."""
    token = login_token(env)
    return env.client.post("/dashboard/login", data={
        "key": env.keys["admin"] if key is None else key, "login_csrf": token, **extra})


def csrf_of(env: App) -> str:
    """The session's CSRF token, as a signed-in page embeds it."""
    html = env.client.get("/dashboard/costs").get_data(as_text=True)
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def page_data(html: str) -> Any:
    """The JSON a page embedded in <script type="application/json" id="data">."""
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def desk(html: str) -> str:
    """Only the charts drawn for a wide screen (each chart also comes drawn for a phone)."""
    return "".join(re.findall(r'<svg class="chart for-desk .*?</svg>', html, re.S))


def set_cookie_header(response: Any, name: str) -> str:
    """The Set-Cookie header that sets cookie `name`."""
    found = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.getlist("Set-Cookie")
    return str(found[0])


def test_signed_out_pages_redirect_to_the_login(kanal_app: App) -> None:
    for path in PAGES:
        r = kanal_app.client.get(path)
        assert r.status_code == 303, path
        assert r.headers["Location"].startswith("/dashboard/login")
        assert r.headers["Cache-Control"] == "no-store"
    for path in ("/dashboard/logout", "/dashboard/costs"):
        r = kanal_app.client.post(path, data={"action": "delete", "dimension": "channel",
                                              "key": "email"})
        assert r.status_code == 303 and r.headers["Location"] == "/dashboard/login"


def test_sign_in_sets_a_hardened_cookie_and_stores_only_its_hash(kanal_app: App) -> None:
    r = sign_in(kanal_app)
    assert r.status_code == 303
    assert r.headers["Location"] == "/dashboard/"
    header = set_cookie_header(r, "kanal_session")
    token = header.split(";")[0].split("=", 1)[1]
    flags = [f.strip().lower() for f in header.split(";")[1:]]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/dashboard" in flags
    assert "secure" not in flags  # plain http
    assert "max-age=43200" in flags
    rows = kanal_app.rows("SELECT token_hash, key_id, expires_at - created_at "
                          "FROM dashboard_sessions")
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), rows[0][1], 12 * 3600 * 1000)]
    assert token not in json.dumps(kanal_app.rows("SELECT * FROM dashboard_sessions"))
    page = kanal_app.client.get("/dashboard/")
    assert page.status_code == 200
    assert "Sign out" in page.get_data(as_text=True)


def test_cookie_is_secure_over_https_and_behind_a_trusted_proxy(tmp_path: Any) -> None:
    from kanal_testing import make_app

    from kanal_collector.app import close_app


    env = make_app(tmp_path / "kanal.db", trusted_proxies=("127.0.0.1/32",))
    try:
        token = login_token(env)
        r = env.client.post("/dashboard/login", data={"key": env.keys["admin"],
                                                      "login_csrf": token},
                            headers={"X-Forwarded-Proto": "https",
                                     "Origin": "https://localhost"})
        assert r.status_code == 303
        assert "secure" in set_cookie_header(r, "kanal_session").lower().split("; ")
    finally:
        close_app(env.app)


def test_wrong_key_is_a_401_page_without_detail(kanal_app: App) -> None:
    for key in ("ak_wrong", kanal_app.keys["secret"], kanal_app.keys["public"], ""):
        r = sign_in(kanal_app, key)
        assert r.status_code == 401
        html = r.get_data(as_text=True)
        assert "That is not a valid admin key." in html
        assert "secret" not in html.lower().replace("secret keys", "")
        assert not [h for h in r.headers.getlist("Set-Cookie") if h.startswith("kanal_session=")]
    assert kanal_app.rows("SELECT COUNT(*) FROM dashboard_sessions") == [(0,)]


def _from(env: App, address: str, key: str) -> Any:
    """A sign-in from another client address."""
    token = login_token(env)
    return env.client.post("/dashboard/login", data={"key": key, "login_csrf": token},
                           environ_base={"REMOTE_ADDR": address})


def test_guesses_at_a_key_wait_and_the_owner_does_not(kanal_app: App) -> None:
    admin = kanal_app.keys["admin"]
    guess = admin[:10] + "x" * (len(admin) - 10)  # a leaked prefix, the rest guessed
    # Guesses with a prefix no admin key has can't be right: refused, never counted.
    for _ in range(30):
        assert sign_in(kanal_app, "ak_guess" + "y" * 24).status_code == 401
    assert kanal_app.rows("SELECT COUNT(*) FROM login_failures") == [(0,)]
    # Ten guesses at the real key's prefix from one address: that address waits for
    # that key, even with the right key (or every guess could be tried).
    for _ in range(10):
        assert sign_in(kanal_app, guess).status_code == 401
    r = sign_in(kanal_app)
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 601
    assert "kanal dashboard unlock" in r.get_data(as_text=True)
    # The owner from another address signs in as usual …
    assert _from(kanal_app, "192.0.2.7", admin).status_code == 303
    # … and so does another admin key from the attacker's address.
    runtime = kanal_app.app.extensions["kanal"]
    from kanal_collector.store.keys import create_key

    other = create_key(runtime.db.conn(), "admin", int(kanal_app.clock.now() * 1000))
    kanal_app.client.delete_cookie("kanal_session", path="/dashboard")
    assert sign_in(kanal_app, other).status_code == 303
    kanal_app.client.delete_cookie("kanal_session", path="/dashboard")
    # the window passes
    kanal_app.clock.advance(601)
    assert sign_in(kanal_app).status_code == 303


def test_unlock_clears_the_wait(kanal_app: App) -> None:
    from click.testing import CliRunner

    from kanal_collector.cli import cli

    admin = kanal_app.keys["admin"]
    for _ in range(10):
        sign_in(kanal_app, admin[:10] + "x" * 22)
    assert sign_in(kanal_app).status_code == 429
    db = ["--db", kanal_app.db]
    locks = CliRunner().invoke(cli, ["dashboard", "locks", *db])
    assert locks.exit_code == 0
    assert f"127.0.0.1\t{admin[:10]}…\t10 failed" in locks.output
    other = CliRunner().invoke(cli, ["dashboard", "unlock", "--address", "192.0.2.1", *db])
    assert other.output == "Cleared 0 failed sign-in(s).\n"
    result = CliRunner().invoke(cli, ["dashboard", "unlock", "--key", admin[:10] + "…", *db])
    assert result.exit_code == 0 and result.output == "Cleared 10 failed sign-in(s).\n"
    assert sign_in(kanal_app).status_code == 303


def test_the_limits_come_from_the_config(tmp_path: Any) -> None:
    from kanal_testing import make_app

    from kanal_collector.app import close_app

    env = make_app(tmp_path / "k.db", sections={"dashboard": {"login_attempts": 3,
                                                              "login_window": "1h"}})
    try:
        admin = env.keys["admin"]
        for _ in range(3):
            sign_in(env, admin[:10] + "x" * 22)
        r = sign_in(env)
        assert r.status_code == 429 and 3500 < int(r.headers["Retry-After"]) <= 3601
    finally:
        close_app(env.app)


def test_sign_in_needs_its_form_token_and_same_origin(kanal_app: App) -> None:
    r = kanal_app.client.post("/dashboard/login", data={"key": kanal_app.keys["admin"]})
    assert r.status_code == 403
    token = login_token(kanal_app)
    r = kanal_app.client.post("/dashboard/login", data={"key": kanal_app.keys["admin"],
                                                        "login_csrf": "forged"})
    assert r.status_code == 403
    r = kanal_app.client.post("/dashboard/login",
                              data={"key": kanal_app.keys["admin"], "login_csrf": token},
                              headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert kanal_app.rows("SELECT COUNT(*) FROM dashboard_sessions") == [(0,)]
    token = login_token(kanal_app)  # every form shown carries a fresh token
    r = kanal_app.client.post("/dashboard/login",
                              data={"key": kanal_app.keys["admin"], "login_csrf": token},
                              headers={"Origin": "http://localhost"})
    assert r.status_code == 303


NEXT_TARGETS = [
    ("/dashboard/attribution?since=7d", "/dashboard/attribution?since=7d"),
    ("//evil.example/dashboard", "/dashboard/"),
    ("https://evil.example/", "/dashboard/"),
    ("/dashboard/../api/keys", "/dashboard/"),
    ("/dashboardx", "/dashboard/"),
    ("/dashboard\\@evil.example", "/dashboard/"),
    ("/dashboard//evil.example", "/dashboard/"),
    ("javascript:alert(1)", "/dashboard/"),
]


def test_no_open_redirect_after_sign_in(kanal_app: App) -> None:
    for next_value, location in NEXT_TARGETS:
        kanal_app.client.delete_cookie("kanal_session", path="/dashboard")
        r = sign_in(kanal_app, next=next_value)
        assert r.status_code == 303
        assert r.headers["Location"] == location, next_value


def test_signed_out_redirect_keeps_a_safe_next(kanal_app: App) -> None:
    r = kanal_app.client.get("/dashboard/attribution?since=7d")
    assert r.headers["Location"] == "/dashboard/login?next=/dashboard/attribution%3Fsince%3D7d"
    form = kanal_app.client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/dashboard/attribution?since=7d"' in form


def test_logout_needs_csrf_and_ends_the_session(kanal_app: App) -> None:
    sign_in(kanal_app)
    csrf = csrf_of(kanal_app)
    r = kanal_app.client.post("/dashboard/logout")
    assert r.status_code == 403
    r = kanal_app.client.post("/dashboard/logout", data={"csrf": "nope"})
    assert r.status_code == 403
    r = kanal_app.client.post("/dashboard/logout", data={"csrf": csrf},
                              headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = kanal_app.client.post("/dashboard/logout", data={"csrf": csrf},
                              headers={"Referer": "https://evil.example/page"})
    assert r.status_code == 403
    assert kanal_app.client.get("/dashboard/").status_code == 200
    r = kanal_app.client.post("/dashboard/logout", headers={"X-CSRF-Token": csrf,
                                                            "Origin": "http://localhost"})
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard/login"
    assert kanal_app.rows("SELECT COUNT(*) FROM dashboard_sessions") == [(0,)]
    assert kanal_app.client.get("/dashboard/").status_code == 303


def test_revoking_the_admin_key_ends_its_sessions(kanal_app: App) -> None:
    conn = kanal_app.app.extensions["kanal"].db.conn()
    other = create_key(conn, "admin", NOW_MS, name="second")
    sign_in(kanal_app, other)
    assert kanal_app.client.get("/dashboard/").status_code == 200
    revoke_key(conn, other, NOW_MS)
    r = kanal_app.client.get("/dashboard/")
    assert r.status_code == 303 and r.headers["Location"].startswith("/dashboard/login")
    assert kanal_app.rows("SELECT COUNT(*) FROM dashboard_sessions") == [(0,)]


def test_sessions_expire_after_12_hours(kanal_app: App) -> None:
    sign_in(kanal_app)
    kanal_app.clock.advance(12 * 3600 - 1)
    assert kanal_app.client.get("/dashboard/").status_code == 200
    kanal_app.clock.advance(2)
    assert kanal_app.client.get("/dashboard/").status_code == 303


def test_a_made_up_session_cookie_is_no_session(kanal_app: App) -> None:
    kanal_app.client.set_cookie("kanal_session", "x" * 43, path="/dashboard")
    assert kanal_app.client.get("/dashboard/").status_code == 303


def test_security_headers(kanal_app: App) -> None:
    r = kanal_app.client.get("/dashboard/login")
    assert_hardened(r)
    sign_in(kanal_app)
    for path in PAGES[:5]:
        assert_hardened(kanal_app.client.get(path))


def assert_hardened(r: Any) -> None:
    """The dashboard's security headers, and no inline script or style in the page."""
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    # no inline script: every <script> is a data block
    assert re.findall(r"<script(?![^>]*type=\"application/json\")", html) == []
    assert " style=" not in html and "<style" not in html


def test_static_css_is_served_without_a_session(kanal_app: App) -> None:
    r = kanal_app.client.get("/dashboard/static/dashboard.css")
    assert r.status_code == 200
    assert b".series-0" in r.data
    r.close()


PAGE_DOCUMENTS = [
    ("/dashboard/?since=7d", "/api/reports/overview?since=7d"),
    ("/dashboard/attribution?since=30d", "/api/reports/attribution?since=30d"),
    ("/dashboard/journeys?since=90d", "/api/reports/journeys?since=90d"),
    ("/dashboard/experiments", "/api/reports/experiments"),
    ("/dashboard/costs", "/api/costs"),
    ("/dashboard/recommendations?since=7d", "/api/reports/recommendations?since=7d"),
    ("/dashboard/audiences", "/api/audiences"),
]


def test_pages_show_the_api_documents(kanal_app: App) -> None:
    seed(kanal_app)
    kanal_app.client.put("/api/costs/channel/email", json={"amount": 10},
                         headers=admin(kanal_app))
    sign_in(kanal_app)
    for page, api in PAGE_DOCUMENTS:
        r = kanal_app.client.get(page)
        assert r.status_code == 200
        expected = kanal_app.client.get(api, headers=admin(kanal_app)).get_json()
        assert page_data(r.get_data(as_text=True)) == expected, page


def test_overview_tiles_and_charts(kanal_app: App) -> None:
    seed(kanal_app)
    sign_in(kanal_app)
    html = kanal_app.client.get("/dashboard/?since=7d").get_data(as_text=True)
    data = page_data(html)
    for kpi in ("events", "active_profiles", "profiles", "conversions", "revenue"):
        shown = re.search(rf'data-kpi="{kpi}" data-value="([^"]+)"', html)
        assert shown is not None and float(shown.group(1)) == data["totals"][kpi]
    assert 'data-kpi="revenue" data-value="100.5">100.50<' in html
    bars = re.findall(r'<rect class="bar [^"]*"[^>]*data-value="([^"]+)"', desk(html))
    assert bars and all(float(v) > 0 for v in bars)
    assert sum(float(v) for v in re.findall(
        r'data-series="(?:web|server)"[^>]*data-value="([^"]+)"', desk(html))) == \
        data["totals"]["events"]


def test_attribution_page_has_a_column_per_model(kanal_app: App) -> None:
    seed(kanal_app)
    sign_in(kanal_app)
    html = kanal_app.client.get("/dashboard/attribution").get_data(as_text=True)
    data = page_data(html)
    for model in data["models"]:
        assert f'<th colspan="2" class="model">{model}</th>' in html
    for row in data["models"]["last_touch"]["campaign"]:
        cell = re.search(rf'<tr data-key="{row["key"]}">.*?data-model="last_touch" '
                         r'data-field="revenue" data-value="([^"]+)"', html, re.S)
        assert cell is not None and float(cell.group(1)) == row["revenue"]
    assert "<svg" in html and 'aria-label="Revenue credited per channel, by model"' in html


def test_bad_window_and_unknown_journey_pages(kanal_app: App) -> None:
    sign_in(kanal_app)
    r = kanal_app.client.get("/dashboard/?since=soon")
    assert r.status_code == 400
    assert "since: " in r.get_data(as_text=True)
    r = kanal_app.client.get("/dashboard/journeys/%3Cscript%3E")
    assert r.status_code == 404
    assert "&lt;script&gt;" in r.get_data(as_text=True)


def test_costs_form_sets_and_removes_with_csrf(kanal_app: App) -> None:
    sign_in(kanal_app)
    csrf = csrf_of(kanal_app)
    form = {"action": "set", "dimension": "campaign", "key": "spring", "amount": "12.5",
            "currency": "EUR"}
    assert kanal_app.client.post("/dashboard/costs", data=form).status_code == 403
    r = kanal_app.client.post("/dashboard/costs", data={**form, "csrf": csrf})
    assert r.status_code == 303
    costs = kanal_app.client.get("/api/costs", headers=admin(kanal_app)).get_json()["costs"]
    assert [(c["key"], c["amount"]) for c in costs] == [("spring", 12.5)]
    r = kanal_app.client.post("/dashboard/costs", data={**form, "amount": "x", "csrf": csrf})
    assert r.status_code == 400 and "amount must be a number" in r.get_data(as_text=True)
    r = kanal_app.client.post("/dashboard/costs", data={**form, "action": "drop", "csrf": csrf})
    assert r.status_code == 400 and "action must be set or delete" in r.get_data(as_text=True)
    r = kanal_app.client.post("/dashboard/costs", data={
        "action": "delete", "dimension": "campaign", "key": "spring", "csrf": csrf})
    assert r.status_code == 303
    assert kanal_app.client.get("/api/costs", headers=admin(kanal_app)).get_json() == \
        {"costs": []}


# --- charts --------------------------------------------------------------------------


def test_stacked_bars_escape_labels_and_scale_to_the_tallest_column() -> None:
    both = str(charts.stacked_bars("Events <by> day", [
        ("2026-01-01", {"web": 3, "<script>": 1}), ("2026-01-02", {"web": 4})]))
    svg = desk(both)
    assert both.count("<svg ") == 2 and 'class="chart for-phone chart-stacked"' in both
    assert "<script>" not in both and "&lt;script&gt;" in svg
    assert 'aria-label="Events &lt;by&gt; day"' in svg
    heights = [float(h) for h in re.findall(r'class="bar[^"]*"[^>]*height="([^"]+)"', svg)]
    assert len(heights) == 3
    # the ticks are 0 … 4, so the 4-event column fills the plot: 1 : 3 : 4
    ticks = re.findall(r'<text class="axis tick"[^>]*>([^<]+)</text>', svg)
    assert ticks == ["0", "1", "2", "3", "4"]
    tall = max(heights)
    assert sorted(heights) == pytest.approx([tall / 4, tall * 3 / 4, tall])


def test_charts_with_nothing_to_draw() -> None:
    assert "No data in this window" in str(charts.stacked_bars("x", []))
    assert "No data in this window" in str(charts.horizontal_bars("x", [("a", 0)]))
    assert "No data in this window" in str(charts.grouped_bars("x", [], ["m"]))
    assert "No data in this window" in str(charts.interval_chart("x", [("a", None, None, None)]))


def test_interval_chart_draws_around_zero() -> None:
    svg = str(charts.interval_chart("ci", [("holdout", None, None, None),
                                           ("b", -0.05, 0.05, 0.15)]))
    assert "control" in svg
    match = re.search(r'data-value="0.05" data-low="-0.05" data-high="0.15"', svg)
    assert match is not None


def test_journey_and_experiment_pages_with_runs(tmp_path: Any) -> None:
    from journeys_util import Journeys

    from kanal_collector.app import close_app, create_app
    from kanal_collector.config import Config

    env = Journeys(tmp_path)
    env.write("welcome", """\
        trigger: {event: Signed Up}
        goal: {event: Order Completed, within: 7d}
        steps:
          - split:
              holdout: 50
              arms:
                - {name: mail, steps: [{send: welcome, channel: email}]}
        """)
    env.sync()
    for i in range(24):
        env.person(f"p{i}")
        env.track(f"p{i}", "Signed Up")
        if i % 3 == 0:
            env.track(f"p{i}", "Order Completed", order_id=f"o{i}", revenue=20.0)
    env.clock.advance(60)  # windows end at "now", exclusive
    key = create_key(env.conn, "admin", env.now_ms())
    app = create_app(Config(db=env.log.db.target), clock=env.clock)
    try:
        client = app.test_client()
        plain = App(app=app, client=client, db_path=env.log.db.target,
                    keys={"admin": key}, clock=env.clock)
        sign_in(plain)
        bearer = {"Authorization": f"Bearer {key}"}
        html = client.get("/dashboard/experiments").get_data(as_text=True)
        data = page_data(html)
        assert data == client.get("/api/reports/experiments", headers=bearer).get_json()
        [experiment] = data["experiments"]
        assert {a["arm"] for a in experiment["arms"]} == {"holdout", "mail"}
        assert sum(a["runs"] for a in experiment["arms"]) == 24
        assert '<p class="warning" role="alert"><strong>Too early to call:</strong>' in html
        assert 'class="bar interval series-1"' in html
        html = client.get("/dashboard/journeys/welcome").get_data(as_text=True)
        funnel = page_data(html)
        assert funnel == client.get("/api/reports/journeys/welcome",
                                    headers=bearer).get_json()
        assert funnel["totals"]["entered"] == 24 and funnel["totals"]["converted"] == 8
        bars = re.findall(r'<rect class="bar series-0"[^>]*data-value="([^"]+)"', desk(html))
        assert [float(b) for b in bars] == [float(s["reached"]) for s in funnel["steps"]]
        assert 'data-kpi="converted" data-value="8"' in html
        html = client.get("/dashboard/journeys").get_data(as_text=True)
        assert '<a href="/dashboard/journeys/welcome?since=30d">welcome</a>' in html
    finally:
        close_app(app)
        env.close()


@pytest.mark.parametrize(("top", "ticks"), [
    (4, [0, 1, 2, 3, 4]),
    (7, [0, 2, 4, 6, 8]),
    (9.5, [0, 2.5, 5, 7.5, 10]),
    (1210, [0, 500, 1000, 1500]),
    (0.0231, [0, 0.01, 0.02, 0.03]),
    (1, [0, 0.25, 0.5, 0.75, 1]),
    (100, [0, 25, 50, 75, 100]),
])
def test_y_ticks_are_round_and_reach_the_top(top: float, ticks: list[float]) -> None:
    assert axes.nice_ticks(top) == pytest.approx(ticks)


@pytest.mark.parametrize(("value", "short"), [
    (0, "0"), (950, "950"), (1500, "1.5k"), (12000, "12k"), (3_240_000, "3.2M"),
    (0.5, "0.5"), (2.25, "2.25"), (-1500, "-1.5k")])
def test_tick_labels_are_short(value: float, short: str) -> None:
    assert axes.compact(value) == short


def test_units_write_money_with_its_currency_and_rates_as_percent() -> None:
    eur = charts.money("EUR")
    assert (eur.tick(1500), eur.full(1234.5)) == ("1.5k EUR", "1,234.50 EUR")
    assert (charts.money("").tick(1500), charts.COUNT.full(3)) == ("1.5k", "3")
    assert (charts.PERCENT.tick(0.025), charts.PERCENT.full(0.0231)) == ("2.5%", "2.31%")


def test_long_labels_are_cut_and_keep_the_whole_name_as_a_title() -> None:
    name = "welcome_series_for_new_newsletter_subscribers_in_germany_austria"
    cut = axes.fit(name, 100)
    assert cut.endswith("…") and name.startswith(cut[:-1])
    assert axes.text_width(cut) <= 100 < axes.text_width(cut[:-1] + name[len(cut) - 1] + "…")
    assert axes.fit("short", 100) == "short"
    both = str(charts.horizontal_bars("Funnel", [(name, 3), ("b", 1)]))
    assert f">{name}</text>" in desk(both)  # room enough on a wide screen
    svg = both[both.index('<svg class="chart for-phone'):]  # not on a phone
    assert f"<title>{name}</title>" in svg and name not in svg.replace(
        f"<title>{name}</title>", "").replace(f'data-series="{name}"', "").replace(
        f"<title>{name}: 3</title>", "")


def test_ninety_days_of_labels_are_thinned() -> None:
    days = [(f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}", {"web": 1 + d % 5}) for d in range(90)]
    svg = desk(str(charts.stacked_bars("Events", days)))
    labels = re.findall(r'<text class="axis" x="([^"]+)" y="[^"]+" text-anchor="middle">'
                        r"([^<]+)</text>", svg)
    assert 8 <= len(labels) < 90
    xs = [float(x) for x, _ in labels]
    # "03-28" is 5 characters: about 35 units; neighbours stay further apart than that
    assert min(b - a for a, b in zip(xs, xs[1:], strict=False)) > 40
