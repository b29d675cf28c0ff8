"""The dashboard's pages under /dashboard: sign-in, overview, journeys, attribution,
recommendations, experiments and costs. Server-rendered (Jinja, autoescaped), charts as inline SVG,
no inline script (the page's data sits in a `<script type="application/json">` block).
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote

from flask import Blueprint, current_app, g, redirect, render_template, request
from werkzeug.wrappers import Response

from ..notices import in_doubt_notices
from ..products.report import recommendations_report
from ..reports import views
from ..reports.costs import delete_cost, set_cost
from ..reports.window import WindowError, parse_window
from ..runtime import Runtime, get_runtime
from . import auth, charts

dashboard_blueprint = Blueprint(
    "dashboard", __name__, url_prefix="/dashboard",
    template_folder="templates", static_folder="static",
)

WINDOWS = ("7d", "30d", "90d")
_OPEN = {"dashboard.login", "dashboard.login_post", "dashboard.static"}
_SAFE_NEXT = re.compile(r"^/dashboard(/[A-Za-z0-9_\-.~%/]*)?(\?[A-Za-z0-9_\-.~%=&+]*)?$")
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class _State:
    """Per-app dashboard state: the login limiter."""

    def __init__(self, runtime: Runtime) -> None:
        self.limiter = auth.LoginLimiter.from_config(runtime.db, runtime.clock,
                                                     runtime.config)


def _state() -> _State:
    state: _State | None = current_app.extensions.get("kanal.dashboard")
    if state is None:
        state = current_app.extensions.setdefault("kanal.dashboard", _State(get_runtime()))
    return state


def safe_next(target: str | None) -> str:
    """`target` when it is a dashboard path on this site, else the overview."""
    if target and _SAFE_NEXT.match(target) and "//" not in target and ".." not in target:
        return target
    return "/dashboard/"


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(f"dashboard/{template}", **context), status=status,
                    mimetype="text/html")


def _problem(status: int, title: str, message: str) -> Response:
    return _page("problem.html", status, title=title, message=message)


@dashboard_blueprint.before_request
def _require_session() -> Response | None:
    if request.endpoint in _OPEN:
        return None
    runtime = get_runtime()
    session = auth.current_session(request, runtime)
    if session is None:
        target = "/dashboard/login"
        if request.method == "GET" and request.path != "/dashboard/login":
            target += "?next=" + quote(safe_next(request.full_path.rstrip("?")), safe="/")
        return redirect(target, code=303)
    g.dashboard_session = session
    if request.method == "POST":
        sent = request.form.get("csrf") or request.headers.get("X-CSRF-Token")
        if not auth.tokens_equal(sent, session.csrf) or not auth.same_origin(request, runtime):
            return _problem(403, "Request refused",
                            "This form was not sent by the dashboard (missing or wrong CSRF "
                            "token, or another origin). Reload the page and try again.")
    return None


@dashboard_blueprint.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.endpoint == "dashboard.static":
        response.headers["Cache-Control"] = "no-cache"
    else:
        response.headers["Cache-Control"] = "no-store"
    return response


@dashboard_blueprint.context_processor
def _helpers() -> dict[str, Any]:
    session = g.get("dashboard_session")
    return {
        "csrf": session.csrf if session is not None else None,
        # Sends a crash left in doubt stay on every page until someone settles them.
        "in_doubt": (in_doubt_notices(get_runtime().db.conn())
                     if session is not None else []),
        "money": lambda v: "-" if v is None else f"{float(v):,.2f}",
        "number": lambda v: "-" if v is None else (
            f"{v:,.0f}" if float(v).is_integer() else f"{float(v):,.4f}".rstrip("0")),
        "percent": lambda v: "-" if v is None else f"{float(v) * 100:.2f}%",
        "pvalue": lambda v: "-" if v is None else f"{float(v):.4f}",
        "windows": WINDOWS,
    }


def _window() -> tuple[int, int, str]:
    since = request.args.get("since") or "30d"
    until = request.args.get("until")
    runtime = get_runtime()
    since_ms, until_ms = parse_window(since, until, now_ms=int(runtime.clock.now() * 1000))
    return since_ms, until_ms, since


@dashboard_blueprint.errorhandler(WindowError)
def _bad_window(exc: WindowError) -> Response:
    return _problem(400, "Bad window", str(exc))


# --- sign-in -----------------------------------------------------------------------


def _login_form(status: int = 200, message: str | None = None) -> Response:
    runtime = get_runtime()
    token = secrets.token_urlsafe(24)
    response = _page("login.html", status, message=message, login_csrf=token,
                     next=safe_next(request.values.get("next")))
    response.set_cookie(auth.LOGIN_COOKIE, token, max_age=auth.LOGIN_FORM_SECONDS,
                        path=auth.COOKIE_PATH, secure=auth.is_https(request, runtime),
                        httponly=True, samesite="Strict")
    return response


@dashboard_blueprint.get("/login")
def login() -> Response:
    """The sign-in form (signed-in visitors go to the overview)."""
    if auth.current_session(request, get_runtime()) is not None:
        return redirect(safe_next(request.args.get("next")), code=303)
    return _login_form()


@dashboard_blueprint.post("/login")
def login_post() -> Response:
    """Sign in with an admin key."""
    runtime = get_runtime()
    limiter = _state().limiter
    client = auth.client_address(request, runtime)
    typed = (request.form.get("key") or "").strip()
    wait = limiter.retry_after(client, typed)
    if wait:
        response = _problem(429, "Too many attempts",
                            f"Too many failed sign-ins with this key from your address; "
                            f"try again in {wait} seconds (or ask an operator to run "
                            f"`kanal dashboard unlock`).")
        response.headers["Retry-After"] = str(wait)
        return response
    if not auth.tokens_equal(request.form.get("login_csrf"),
                             request.cookies.get(auth.LOGIN_COOKIE)) \
            or not auth.same_origin(request, runtime):
        return _login_form(403, "The sign-in form expired or came from another site. "
                                "Please try again.")
    key = auth.verify_admin_key(runtime, typed)
    if key is None:
        limiter.failed(client, typed)
        return _login_form(401, "That is not a valid admin key.")
    limiter.succeeded(client, typed)
    token, _ = auth.open_session(runtime, key)
    response = redirect(safe_next(request.form.get("next")), code=303)
    response.set_cookie(auth.SESSION_COOKIE, token, max_age=auth.SESSION_SECONDS,
                        path=auth.COOKIE_PATH, secure=auth.is_https(request, runtime),
                        httponly=True, samesite="Strict")
    response.delete_cookie(auth.LOGIN_COOKIE, path=auth.COOKIE_PATH)
    return response


@dashboard_blueprint.post("/logout")
def logout() -> Response:
    """Sign out: the session is deleted."""
    runtime = get_runtime()
    auth.close_session(request, runtime)
    response = redirect("/dashboard/login", code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path=auth.COOKIE_PATH,
                           secure=auth.is_https(request, runtime), httponly=True,
                           samesite="Strict")
    return response


# --- pages -------------------------------------------------------------------------


@dashboard_blueprint.get("/")
def overview() -> Response:
    """KPI tiles and charts: events per day by origin, conversions, revenue."""
    since_ms, until_ms, since = _window()
    runtime = get_runtime()
    data = views.overview_view(runtime.db.conn(), runtime.config,
                               since_ms=since_ms, until_ms=until_ms)
    days = data.get("days", [])
    return _page(
        "overview.html", data=data, since=since, page="overview",
        events_chart=charts.stacked_bars(
            "Events per day by origin", [(d["day"], d["events"]) for d in days]),
        conversions_chart=charts.stacked_bars(
            "Conversions per day", [(d["day"], {"conversions": d["conversions"]}) for d in days]),
        revenue_chart=charts.stacked_bars(
            "Revenue per day", [(d["day"], {"revenue": d["revenue"]}) for d in days]),
        profiles_chart=charts.stacked_bars(
            "Active profiles per day",
            [(d["day"], {"active profiles": d["active_profiles"]}) for d in days]),
    )


@dashboard_blueprint.get("/journeys")
def journeys() -> Response:
    """Every journey's totals."""
    since_ms, until_ms, since = _window()
    data = views.journeys_view(get_runtime().db.conn(), since_ms=since_ms, until_ms=until_ms)
    chart = charts.grouped_bars(
        "Runs entered and converted per journey",
        [(j["journey"], {"entered": j["entered"], "converted": j["converted"]})
         for j in data["journeys"]], ["entered", "converted"])
    return _page("journeys.html", data=data, since=since, page="journeys", chart=chart)


@dashboard_blueprint.get("/journeys/<name>")
def journey(name: str) -> Response:
    """One journey's funnel: a bar per step."""
    since_ms, until_ms, since = _window()
    try:
        data = views.journey_view(get_runtime().db.conn(), name,
                                  since_ms=since_ms, until_ms=until_ms)
    except LookupError:
        return _problem(404, "No such journey", f"There is no journey called {name!r}.")
    steps = data.get("steps", [])
    chart = charts.horizontal_bars(
        f"Funnel of {name}: runs reaching each step",
        [(str(s["step"]), s["reached"]) for s in steps])
    return _page("journey.html", data=data, since=since, page="journeys", chart=chart,
                 name=name)


def _attribution_tables(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dimension: rows of key → {model: row}, and a grouped chart of revenue."""
    models = list(data.get("models", {}))
    out = []
    dimensions: list[str] = []
    for by_dim in data.get("models", {}).values():
        dimensions += [d for d in by_dim if d not in dimensions]
    for dimension in dimensions:
        keys: list[str] = []
        cells: dict[str, dict[str, Any]] = {}
        for model in models:
            for row in data["models"][model].get(dimension, []):
                if row["key"] not in cells:
                    keys.append(row["key"])
                    cells[row["key"]] = {}
                cells[row["key"]][model] = row
        chart = charts.grouped_bars(
            f"Revenue credited per {dimension}, by model",
            [(k, {m: cells[k].get(m, {}).get("revenue", 0) for m in models}) for k in keys],
            models)
        out.append({"dimension": dimension, "names": keys, "cells": cells, "chart": chart})
    return out


@dashboard_blueprint.get("/attribution")
def attribution() -> Response:
    """Every model side by side, per channel, campaign and journey."""
    since_ms, until_ms, since = _window()
    runtime = get_runtime()
    data = views.attribution_view(runtime.db.conn(), runtime.config,
                                  since_ms=since_ms, until_ms=until_ms)
    return _page("attribution.html", data=data, since=since, page="attribution",
                 models=list(data.get("models", {})), tables=_attribution_tables(data))


@dashboard_blueprint.get("/recommendations")
def recommendations() -> Response:
    """What each recommendation kind earned: shown, clicks, purchases, revenue."""
    since_ms, until_ms, since = _window()
    data = recommendations_report(get_runtime().db.conn(), since_ms=since_ms,
                                  until_ms=until_ms)
    chart = charts.grouped_bars(
        "Clicks and purchases per recommendation kind",
        [(k["kind"], {"clicks": k["clicks"], "conversions": k["conversions"]})
         for k in data["kinds"]], ["clicks", "conversions"])
    return _page("recommendations.html", data=data, since=since, page="recommendations",
                 chart=chart)


@dashboard_blueprint.get("/experiments")
def experiments() -> Response:
    """Split tests: arms, rates, lift, p-values and confidence intervals."""
    since_ms, until_ms, since = _window()
    data = views.experiments_view(get_runtime().db.conn(), since_ms=since_ms,
                                  until_ms=until_ms)
    items = []
    for exp in data["experiments"]:
        rows = []
        for arm in exp["arms"]:
            point = None
            if arm.get("ci_low") is not None and arm.get("ci_high") is not None:
                control = next((a for a in exp["arms"] if a["arm"] == exp["control"]), None)
                point = arm["rate"] - (control["rate"] if control else 0.0)
            rows.append((str(arm["arm"]), arm.get("ci_low"), point, arm.get("ci_high")))
        items.append({"experiment": exp, "chart": charts.interval_chart(
            f"{exp['journey']} / {exp['step']}: difference in conversion rate vs "
            f"{exp['control']} (confidence interval)", rows)})
    return _page("experiments.html", data=data, since=since, page="experiments", items=items)


@dashboard_blueprint.get("/deliverability")
def deliverability() -> Response:
    """Bounce and complaint rates per day with the published thresholds; per channel,
    journey and recipient domain."""
    since_ms, until_ms, since = _window()
    data = views.deliverability_view(get_runtime().db.conn(), since_ms=since_ms,
                                     until_ms=until_ms)
    lines: dict[str, list[tuple[str, float]]] = {"complaint_rate": [], "bounce_rate": []}
    for t in data["thresholds"]:
        lines[t["metric"]].append((f"{t['label']}", t["value"]))
    columns = [(d["day"], {"complaint rate": d["complaint_rate"],
                           "bounce rate": d["bounce_rate"]}) for d in data["days"]]
    return _page(
        "deliverability.html", data=data, since=since, page="deliverability",
        complaint_chart=charts.rate_lines(
            "Complaint (spam) rate per day", [(n, {"complaint rate": v["complaint rate"]})
                                              for n, v in columns],
            ["complaint rate"], lines["complaint_rate"]),
        bounce_chart=charts.rate_lines(
            "Bounce rate per day", [(n, {"bounce rate": v["bounce rate"]}) for n, v in columns],
            ["bounce rate"], lines["bounce_rate"]),
        sent_chart=charts.stacked_bars(
            "Email sent per day", [(d["day"], {"sent": d["sent"]}) for d in data["days"]]))


@dashboard_blueprint.get("/costs")
def costs() -> Response:
    """Marketing costs (used for ROAS), with forms to set and remove them."""
    runtime = get_runtime()
    data = views.costs_view(runtime.db.conn(), runtime.config)
    return _page("costs.html", data=data, since=None, page="costs",
                 message=request.args.get("message"))


@dashboard_blueprint.post("/costs")
def costs_post() -> Response:
    """Set (`action=set`) or remove (`action=delete`) one cost."""
    runtime = get_runtime()
    dimension = (request.form.get("dimension") or "").strip()
    key = (request.form.get("key") or "").strip()
    action = request.form.get("action")
    try:
        if action not in ("set", "delete"):
            raise ValueError(f"action must be set or delete, not {action!r}")
        if action == "delete":
            if not delete_cost(runtime.db.conn(), dimension, key):
                raise ValueError(f"no cost for {dimension} {key!r}")
        else:
            raw = (request.form.get("amount") or "").strip()
            try:
                amount = float(raw)
            except ValueError:
                raise ValueError(f"amount must be a number, not {raw!r}") from None
            currency = (request.form.get("currency") or "").strip() or None
            set_cost(runtime.db.conn(), dimension, key, amount, currency,
                     int(runtime.clock.now() * 1000))
    except ValueError as exc:
        data = views.costs_view(runtime.db.conn(), runtime.config)
        return _page("costs.html", 400, data=data, since=None, page="costs",
                     message=str(exc))
    return redirect("/dashboard/costs", code=303)
