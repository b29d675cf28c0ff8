"""Admin routes of the reports: overview, attribution, journeys, experiments, on-site
campaigns and costs.

Every report takes `since` and `until` (a duration back from now such as `30d`, an ISO
date or an ISO time; default the last 30 days). A parameter that can't be read is a 400
naming it. The answers are the documents of reports/views.py, unchanged.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request

from ..errors import BadRequest, NotFound
from ..onsite.report import campaign_report
from ..reports import views
from ..reports.costs import delete_cost, set_cost
from ..reports.window import WindowError, parse_duration, parse_window
from ..runtime import get_runtime
from .routes import admin_blueprint


def _window() -> tuple[int, int]:
    runtime = get_runtime()
    try:
        return parse_window(request.args.get("since"), request.args.get("until"),
                            now_ms=int(runtime.clock.now() * 1000))
    except WindowError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None


def _duration_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_duration(raw, param=name)
    except WindowError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None


@admin_blueprint.get("/reports/overview")
def report_overview() -> Response:
    """Events per day by origin, active profiles, conversions, revenue."""
    since_ms, until_ms = _window()
    runtime = get_runtime()
    try:
        return jsonify(views.overview_view(runtime.db.conn(), runtime.config,
                                           since_ms=since_ms, until_ms=until_ms))
    except WindowError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None


@admin_blueprint.get("/reports/attribution")
def report_attribution() -> Response:
    """Credit per channel, campaign and journey under each model; `models`, `lookback`,
    `half_life` and `goal` override the [attribution] settings."""
    since_ms, until_ms = _window()
    runtime = get_runtime()
    try:
        models = views.parse_models(request.args.get("models"))
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None
    goals = [g.strip() for g in request.args.getlist("goal") if g.strip()]
    settings = views.settings_for(runtime.config, lookback_ms=_duration_arg("lookback"),
                                  half_life_ms=_duration_arg("half_life"), goal_events=goals)
    return jsonify(views.attribution_view(runtime.db.conn(), runtime.config,
                                          since_ms=since_ms, until_ms=until_ms,
                                          models=models, settings=settings))


@admin_blueprint.get("/reports/journeys")
def report_journeys() -> Response:
    """Every journey's funnel totals for runs entered in the window."""
    since_ms, until_ms = _window()
    return jsonify(views.journeys_view(get_runtime().db.conn(),
                                       since_ms=since_ms, until_ms=until_ms))


@admin_blueprint.get("/reports/journeys/<name>")
def report_journey(name: str) -> Response:
    """One journey's funnel, step by step (404 for an unknown journey)."""
    since_ms, until_ms = _window()
    try:
        return jsonify(views.journey_view(get_runtime().db.conn(), name,
                                          since_ms=since_ms, until_ms=until_ms))
    except LookupError:
        raise NotFound(f"no journey {name!r}") from None


@admin_blueprint.get("/reports/experiments")
def report_experiments() -> Response:
    """Split tests: each arm's conversion rate, lift, p-value and confidence interval
    (404 for an unknown `journey`)."""
    since_ms, until_ms = _window()
    journey = (request.args.get("journey") or "").strip() or None
    try:
        return jsonify(views.experiments_view(get_runtime().db.conn(), since_ms=since_ms,
                                              until_ms=until_ms, journey=journey))
    except LookupError:
        raise NotFound(f"no journey {journey!r}") from None


@admin_blueprint.get("/reports/onsite")
def report_onsite() -> Response:
    """Each on-site campaign's arms: people, conversions, shown / clicked / dismissed /
    submitted, and the lift against the control (onsite/report.py)."""
    since_ms, until_ms = _window()
    onsite = current_app.extensions["kanal.onsite"]
    onsite.puller.refresh()
    campaigns = campaign_report(get_runtime().db.conn(), onsite.puller.campaigns.campaigns,
                                since_ms=since_ms, until_ms=until_ms)
    return jsonify({"since": since_ms, "until": until_ms, "campaigns": campaigns})


@admin_blueprint.get("/costs")
def costs_list() -> Response:
    """Marketing costs per channel, campaign or journey."""
    runtime = get_runtime()
    return jsonify(views.costs_view(runtime.db.conn(), runtime.config))


@admin_blueprint.put("/costs/<dimension>/<path:key>")
def costs_put(dimension: str, key: str) -> Response:
    """Set a cost: JSON {"amount": 120.5, "currency": "EUR"} (currency optional)."""
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object: {"amount": 120.5, "currency": "EUR"}',
                         code="invalid_parameter")
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise BadRequest("amount must be a number", code="invalid_parameter")
    currency = body.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise BadRequest("currency must be a string such as \"EUR\"", code="invalid_parameter")
    runtime = get_runtime()
    try:
        set_cost(runtime.db.conn(), dimension, key, float(amount), currency,
                 int(runtime.clock.now() * 1000))
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None
    return jsonify(views.costs_view(runtime.db.conn(), runtime.config))


@admin_blueprint.delete("/costs/<dimension>/<path:key>")
def costs_delete(dimension: str, key: str) -> Response:
    """Remove a cost set through the API (404 when there is none)."""
    runtime = get_runtime()
    try:
        deleted = delete_cost(runtime.db.conn(), dimension, key)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None
    if not deleted:
        raise NotFound(f"no cost for {dimension} {key!r}")
    return jsonify(views.costs_view(runtime.db.conn(), runtime.config))


@admin_blueprint.get("/reports/deliverability")
def report_deliverability() -> Response:
    """Sent email, bounce and complaint rates per day, channel, journey and domain."""
    since_ms, until_ms = _window()
    try:
        return jsonify(views.deliverability_view(get_runtime().db.conn(), since_ms=since_ms,
                                                 until_ms=until_ms))
    except WindowError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None
