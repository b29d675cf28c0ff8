"""The dashboard's pages under /dashboard: sign-in, overview, journeys, recommendations,
experiments, deliverability, predictions and costs (attribution: attribution.py,
audiences: audiences.py). Server-rendered (Jinja, autoescaped), charts as inline SVG, no inline
script (the page's data sits in a `<script type="application/json">` block).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import Blueprint, current_app, g, redirect, render_template, request
from markupsafe import Markup
from werkzeug.wrappers import Response

from ..notices import in_doubt_notices
from ..predict.settings import PredictSettings
from ..predict.views import overview_json
from ..products.report import recommendations_report
from ..profiles.segments import NAMED_VALUES
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


def shop_currency() -> str:
    """The shop's currency code ("" when kanal.toml names none): `[predict] currency`,
    else `[products] default_currency`, else `[costs] currency`."""
    return PredictSettings.from_config(get_runtime().config).currency


def shop_unit() -> charts.Unit:
    """Money in the shop's currency, for chart axes and titles."""
    return charts.money(shop_currency())


def _money(currency: str) -> Any:
    def money(value: Any) -> Markup:
        """An amount with the shop's currency code after it (smaller, in a span)."""
        if value is None:
            return Markup("-")
        unit = Markup(' <span class="unit">{}</span>').format(currency) if currency else ""
        return Markup("{}{}").format(f"{float(value):,.2f}", unit)
    return money


@dashboard_blueprint.context_processor
def _helpers() -> dict[str, Any]:
    session = g.get("dashboard_session")
    currency = shop_currency() if session is not None else ""
    return {
        "currency": currency,
        "in_currency": f" ({currency})" if currency else "",
        "amount": _money(""),
        "ratio": lambda v: "-" if v is None else f"{float(v):,.2f}",
        "csrf": session.csrf if session is not None else None,
        # Sends a crash left in doubt stay on every page until someone settles them.
        "in_doubt": (in_doubt_notices(get_runtime().db.conn())
                     if session is not None else []),
        "money": _money(currency),
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
        own_chart=charts.stacked_bars(
            "Kanal's own events per day by origin",
            [(d["day"], d.get("own_events", {})) for d in days]),
        conversions_chart=charts.stacked_bars(
            "Conversions per day", [(d["day"], {"conversions": d["conversions"]}) for d in days],
            half=True),
        revenue_chart=charts.stacked_bars(
            "Revenue per day", [(d["day"], {"revenue": d["revenue"]}) for d in days],
            unit=shop_unit(), half=True),
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
        [(_step_name(s), s["reached"]) for s in steps])
    return _page("journey.html", data=data, since=since, page="journeys", chart=chart,
                 name=name)


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


def _step_name(step: dict[str, Any]) -> str:
    """A funnel row's name: the step's id from the journey file, and what it does."""
    what = step.get("message") or step.get("kind")
    return f"{step['step']} · {what}" if what else str(step["step"])


def _histogram(label: str, hist: dict[str, Any], series: str, *, digits: int = 2,
               currency: str = "", half: bool = False) -> Any:
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    unit = f" {currency}" if currency else ""
    columns = [(f"{edges[i]:,.{digits}f}–{edges[i + 1]:,.{digits}f}{unit}", {series: n})
               for i, n in enumerate(counts)]
    return charts.stacked_bars(label, columns, half=half)


@dashboard_blueprint.get("/predict")
def predict() -> Response:
    """Predictive scores: stages, churn risk, distributions, stages per fit, calibration."""
    runtime = get_runtime()
    data = overview_json(runtime.db.conn(),
                         min_customers=PredictSettings.from_config(runtime.config).min_customers)
    counts = data["counts"]
    dist = data["distributions"]
    calibration = data.get("calibration") or {}
    history = [(_day(h["asOf"]) + f" #{h['fitId']}", h["stages"]) for h in data["history"]]
    return _page(
        "predict.html", data=data, since=None, page="predict",
        customers=sum(counts["stages"].values()), when=_when, day=_day_of,
        stage_chart=charts.horizontal_bars(
            "People per lifecycle stage",
            [(s, counts["stages"].get(s, 0)) for s in NAMED_VALUES["stage"]], half=True),
        risk_chart=charts.horizontal_bars(
            "People per churn risk",
            [(r, counts["risks"].get(r, 0)) for r in NAMED_VALUES["churn_risk"]], half=True),
        active_chart=_histogram("Customers by probability active",
                                dist.get("probabilityActive") or {}, "customers", digits=1,
                                half=True),
        value_chart=_histogram("Customers by predicted 365-day value",
                               dist.get("predictedValue") or {}, "customers", digits=0,
                               currency=shop_currency(), half=True),
        history_chart=charts.stacked_bars("Lifecycle stages per fit", history),
        calibration_chart=charts.grouped_bars(
            "Mean orders per customer in the holdout, by repeat purchases before it",
            [(str(r["repeat"]), {"actual": r["actual"] or 0, "predicted": r["predicted"] or 0})
             for r in calibration.get("rows", [])], ["actual", "predicted"]),
    )


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _day_of(day: int) -> str:
    return _day(day * 86_400_000)


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime(
        "%Y-%m-%d %H:%M UTC")


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
