"""Scores as the admin API, `kanal predict show` and `kanal profiles show` show them:
each value with the inputs it came from and the fit that made it.

Reads only what a fit stored (no numpy, no scipy): the serving process imports this.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..store import predict as store
from ..store.connection import Connection

NOT_ENOUGH = "not enough data yet"
MODEL_VALUES = ("probabilityActive", "churnRisk", "expectedOrders90d", "expectedOrders365d",
                "predictedValue", "nextOrderAt")
"""Values that need the fitted models (the rest is RFM and history)."""


def fit_summary(fit: dict[str, Any]) -> dict[str, Any]:
    """A fit without its bulky parts: id, model version, dates, status, parameters."""
    record = fit.get("record") or {}
    return {
        "id": fit["id"], "modelVersion": fit["modelVersion"], "asOf": fit["asOf"],
        "startedAt": fit["startedAt"], "finishedAt": fit["finishedAt"],
        "status": fit["status"], "message": fit["message"],
        "currency": record.get("currency") or None, "unit": record.get("unit"),
        "bgnbd": record.get("bgnbd"), "gammaGamma": record.get("gammaGamma"),
        "rfm": record.get("rfm"), "riskBands": record.get("riskBands"),
        "thresholds": record.get("thresholds"), "sufficiency": record.get("sufficiency"),
        "problems": record.get("problems", []),
    }


def scores_json(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    """A person's scores with their inputs and fit; None when no fit scored them."""
    details = store.score_details(conn, profile_id)
    if details is None:
        return None
    fit = store.fit(conn, int(details.pop("fitId")))
    inputs = details.pop("inputs")
    missing = [name for name in MODEL_VALUES if details.get(name) is None]
    why: list[str] = []
    if fit is not None:
        record = fit.get("record") or {}
        why = list((record.get("sufficiency") or {}).get("missing") or [])
        why += list(record.get("problems") or [])
    return {"values": details, "inputs": inputs,
            "fit": None if fit is None else fit_summary(fit),
            "notEnoughData": why if why and missing else []}


def _day(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%MZ")


def score_lines(scores: dict[str, Any]) -> list[str]:
    """`kanal predict show` / `kanal profiles show`: one line a value, with its inputs."""
    v, i = scores["values"], scores["inputs"]
    fit = scores["fit"] or {}
    money = f" {fit['currency']}" if fit.get("currency") else ""
    why = scores["notEnoughData"]

    def model(text: Callable[[], str], present: bool) -> str:
        if present:
            return text()
        return f"{NOT_ENOUGH} ({'; '.join(why)})" if why else "-"

    bands = fit.get("riskBands") or {}
    rfm = fit.get("rfm") or {}
    lines = [
        f"fit {fit.get('id')} (model {fit.get('modelVersion')}, as of "
        f"{_when(fit.get('asOf'))}, RFM edges: {rfm.get('mode', '-')})",
        f"  stage               {v['stage']}  (R{v['recencyScore']} F{v['frequencyScore']} "
        f"M{v['monetaryScore']}: {i['daysSinceLastPurchase']} days since the last "
        f"purchase, {i['purchases']} purchases, {v['historicValue']:.2f}{money} spent)",
    ]
    p = v["probabilityActive"]
    if v["churnRisk"] is not None and i["repeatPurchases"] == 0:
        risk_why = "one purchase: from recency"
    elif p is not None:
        risk_why = (f"P(active) {p:.2f}; low from {bands.get('lowFrom')}, high below "
                    f"{bands.get('highBelow')}")
    else:
        risk_why = ""
    lines.append("  churn risk          " + model(
        lambda: f"{v['churnRisk']}  ({risk_why})", v["churnRisk"] is not None))
    lines.append("  probability active  " + model(
        lambda: f"{p:.3f}" + ("  (no repeat purchase yet: BG/NBD cannot tell)"
                              if i["repeatPurchases"] == 0 else ""), p is not None))
    lines.append("  expected orders     " + model(
        lambda: f"{v['expectedOrders90d']:.2f} in 90 days, {v['expectedOrders365d']:.2f} "
                "in 365 days", v["expectedOrders365d"] is not None))
    value, spend = v["predictedValue"], i.get("expectedPurchaseValue")
    lines.append("  predicted value     " + model(
        lambda: f"{value:.2f}{money} in 365 days ({v['expectedOrders365d']:.2f} purchases "
                f"× {(spend or 0):.2f}{money})", value is not None))
    lines.append(f"  historic value      {v['historicValue']:.2f}{money}")
    if v["nextOrderAt"] is not None:
        next_order = f"{_day(v['nextOrderAt'])}  (when an active customer's expected " \
                     "purchases since the last one reach one)"
    elif p is not None:
        next_order = "-  (P(active) below 0.5)"
    else:
        next_order = model(lambda: "", False)
    lines.append(f"  next order          {next_order}")
    average = i["averageRepeatValue"]
    lines.append(
        f"  inputs: {i['orders']} orders on {i['purchases']} days ({i['repeatPurchases']} "
        f"repeat), first {_day(i['firstPurchase'])}, last {_day(i['lastPurchase'])}, "
        f"{i['daysAsCustomer']} days a customer, average repeat purchase "
        f"{'-' if average is None else f'{average:.2f}{money}'}")
    return lines


def overview_json(conn: Connection, *, min_customers: int,
                  history: int = 30) -> dict[str, Any]:
    """The document of `GET /api/predict` and the dashboard's page: the latest fit, its
    distributions and calibration, people per stage and churn risk now, and the stage
    counts of the recent fits (oldest first)."""
    latest = store.latest_fit(conn)
    running = store.latest_fit(conn, statuses=("running",))
    record = (latest or {}).get("record") or {}
    recent = [f for f in store.fits(conn, limit=history) if f["status"] in store.FINISHED]
    out: dict[str, Any] = {
        "fit": None if latest is None else fit_summary(latest),
        "running": None if running is None else {"id": running["id"],
                                                 "startedAt": running["startedAt"]},
        "counts": store.score_counts(conn),
        "distributions": record.get("distributions") or {},
        "calibration": record.get("calibration"),
        "history": [{"fitId": f["id"], "asOf": f["asOf"], "status": f["status"],
                     "stages": (f["record"].get("counts") or {}).get("stages", {}),
                     "risks": (f["record"].get("counts") or {}).get("risks", {})}
                    for f in reversed(recent)],
        "notEnoughData": [],
    }
    if latest is None:
        orders = store.order_count(conn)
        out["notEnoughData"] = [f"no fit yet; {orders} orders so far "
                                f"(the models need at least {min_customers} customers)"]
    elif latest["status"] == "not_enough_data":
        out["notEnoughData"] = list((record.get("sufficiency") or {}).get("missing") or [])
    return out
