"""The dashboard's Attribution page: every model side by side per channel, campaign and
journey, revenue in the shop's currency, and ROAS (revenue credited ÷ cost) per model
wherever a cost is set (kanal.toml `[costs]`, the Costs page or `PUT /api/costs/…`).
Registered on the dashboard's blueprint (routes.py), behind its sign-in.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from ..reports import views
from ..runtime import get_runtime
from . import charts
from .routes import _page, _window, dashboard_blueprint, shop_unit


def attribution_tables(data: dict[str, Any], unit: charts.Unit) -> list[dict[str, Any]]:
    """Per dimension: rows of key → {model: row}, a grouped chart of revenue, and the
    keys that have a cost (their ROAS per model)."""
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
            models, unit=unit)
        costed = [k for k in keys
                  if any(r.get("cost") is not None for r in cells[k].values())]
        out.append({"dimension": dimension, "names": keys, "cells": cells, "chart": chart,
                    "costed": costed})
    return out


@dashboard_blueprint.get("/attribution")
def attribution() -> Response:
    """Every model side by side, per channel, campaign and journey, with ROAS."""
    since_ms, until_ms, since = _window()
    runtime = get_runtime()
    data = views.attribution_view(runtime.db.conn(), runtime.config,
                                  since_ms=since_ms, until_ms=until_ms)
    return _page("attribution.html", data=data, since=since, page="attribution",
                 models=list(data.get("models", {})),
                 tables=attribution_tables(data, shop_unit()))
