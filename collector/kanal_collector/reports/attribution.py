"""Multi-touch attribution: which channels, campaigns and journeys earned the conversions.

A conversion is a track event named in the settings' goal events ("Order Completed" by
default) whose timestamp falls in the window [since, until), on a profile, and not a
bot's (`properties.bot = true`); its revenue is `order_revenue(properties)` (0 when it
has none). Its touchpoints (touchpoints.py) are the events of the same profile (merged
profiles included) from `lookback` before the conversion up to the conversion itself,
in (timestamp, event id) order; the conversion event counts too when it carries UTM.

Each model splits one conversion (credit 1, and its revenue) over its touchpoints
t1..tn:

    first_touch     all to t1
    last_touch      all to tn
    linear          1/n each
    time_decay      weight 2^(−Δt / half_life), Δt = conversion time − touch time, normalized
    position_based  40% t1, 40% tn, 20% split evenly over t2..tn−1 (n=1: 100%; n=2: 50/50)

A conversion with no touchpoint is "unattributed" and credits no key.

The processor keeps every conversion's credit as it goes (credits.py), and the report
reads those daily sums when they were kept with the report's settings. Otherwise, and as
the test oracle of the kept credits, it reads the log once: one query
(store/attribution.py) returns the candidate
events profile by profile in time order, and a sliding list of the profile's recent
candidates is kept; a candidate's body is parsed only when a conversion of its profile
needs it. Every model is computed in that one pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..money import order_revenue
from ..profiles.step import KANAL_KEY_KIND
from ..store import attribution as store
from ..store import orders as order_store
from ..store.connection import Connection
from . import credits
from .attribution_model import MODELS, Attribution, AttributionSettings, check_models
from .touchpoints import DIMENSIONS, MESSAGE_EVENTS, Touch, classify

__all__ = ["DIMENSIONS", "MODELS", "Attribution", "AttributionSettings", "attribute",
           "attribution_report"]

_UNSEEN = -2  # a candidate not classified yet
_NOT_A_TOUCH = -1


Sums = dict[int, list[float]]  # combination id → [conversions, revenue]


def _add(sums: Sums, cid: int, weight: float, revenue: float) -> None:
    entry = sums.get(cid)
    if entry is None:
        sums[cid] = [weight, weight * revenue]
    else:
        entry[0] += weight
        entry[1] += weight * revenue


def _add_shares(sums: Sums, cids: list[int], weights: list[float], revenue: float) -> None:
    for cid, weight in zip(cids, weights, strict=True):
        _add(sums, cid, weight, revenue)


def _credit(models: tuple[str, ...], sums: dict[str, Sums], cids: list[int],
            times: list[int], at: int, revenue: float, half_life: float) -> None:
    """Add one conversion's credit, under every model, to `sums`."""
    n = len(cids)
    if n == 1:
        cid = cids[0]
        for model in models:
            _add(sums[model], cid, 1.0, revenue)
        return
    for model in models:
        target = sums[model]
        if model == "first_touch":
            _add(target, cids[0], 1.0, revenue)
        elif model == "last_touch":
            _add(target, cids[-1], 1.0, revenue)
        elif model == "linear":
            _add_shares(target, cids, [1.0 / n] * n, revenue)
        elif model == "time_decay":
            weights = [2.0 ** ((t - at) / half_life) for t in times]
            total = sum(weights)
            _add_shares(target, cids, [w / total for w in weights], revenue)
        elif n == 2:  # position_based
            _add(target, cids[0], 0.5, revenue)
            _add(target, cids[1], 0.5, revenue)
        else:
            middle = 0.2 / (n - 2)
            _add_shares(target, cids, [0.4, *([middle] * (n - 2)), 0.4], revenue)


def attribute(conn: Connection, *, since_ms: int, until_ms: int,
              settings: AttributionSettings | None = None,
              models: Sequence[str] = MODELS, source: str = "auto") -> Attribution:
    """Credit every conversion in [since_ms, until_ms) to its touchpoints, unrounded.

    `source` "kept" reads the credits the processor keeps (credits.py; ValueError when
    they aren't kept for these settings), "log" reads the log (the oracle the kept
    credits are tested against), "auto" the kept credits when they are there.
    """
    settings = settings or AttributionSettings()
    chosen = check_models(models)
    if since_ms >= until_ms:
        raise ValueError("since_ms must be before until_ms (the window is empty)")
    if source not in ("auto", "kept", "log"):
        raise ValueError(f"source must be auto, kept or log, not {source!r}")
    if source != "log":
        kept = credits.kept_attribution(conn, since_ms=since_ms, until_ms=until_ms,
                                        settings=settings, models=chosen)
        if kept is not None:
            return kept
        if source == "kept":
            raise ValueError("attribution credits aren't kept for these settings yet")
    return attribute_from_log(conn, since_ms=since_ms, until_ms=until_ms,
                              settings=settings, models=chosen)


def attribute_from_log(conn: Connection, *, since_ms: int, until_ms: int,
                       settings: AttributionSettings, models: tuple[str, ...],
                       ) -> Attribution:
    """`attribute` by reading the log (every candidate event of the window)."""
    chosen = models
    lookback = settings.lookback_ms
    half_life = float(settings.half_life_ms)
    ignore = frozenset(settings.ignore_referrers)
    loads = orjson.loads

    result = Attribution()
    combos: dict[Touch, int] = {}
    sums: dict[str, Sums] = {m: {} for m in chosen}

    def combo(touch: Touch) -> int:
        cid = combos.get(touch)
        if cid is None:
            cid = combos[touch] = len(combos)
        return cid

    # Of the copies of an order only the one that counts is a conversion or a touch.
    uncounted = order_store.uncounted(conn, since_ms - lookback, until_ms)
    rows = store.candidate_events(
        conn, goal_events=settings.goal_events, message_events=MESSAGE_EVENTS,
        kanal_key_kind=KANAL_KEY_KIND, since_ms=since_ms, until_ms=until_ms,
        lookback_ms=lookback)
    current = None
    # The profile's candidates within `lookback` of the newest row, oldest first:
    # [timestamp, combination id (or _UNSEEN / _NOT_A_TOUCH), row, credited yet].
    recent: deque[list[Any]] = deque()
    for row in rows:
        if uncounted and row[2] in uncounted:
            continue
        pid = row[0]
        ts = row[1]
        if pid != current:
            current = pid
            recent = deque()
        elif recent:
            # Rows come in time order, so a candidate older than `lookback` before this
            # row can't be in the window of this or any later conversion.
            edge = ts - lookback
            while recent and recent[0][0] < edge:
                recent.popleft()
        if not row[7]:
            recent.append([ts, _UNSEEN, row, False])
            continue
        _, _, _, kind, event, key_kind, body, _ = row
        parsed = loads(body)
        if not isinstance(parsed, dict):
            parsed = {}
        properties = parsed.get("properties")
        if not isinstance(properties, dict):
            properties = {}
        if properties.get("bot") is True:
            continue
        touch = classify(kind, event, key_kind, parsed, ignore)
        if touch is not None:
            recent.append([ts, combo(touch), None, False])
        revenue = order_revenue(properties)
        result.conversions += 1
        result.revenue += revenue

        cids: list[int] = []
        times: list[int] = []
        for entry in recent:
            if entry[1] == _UNSEEN:
                _, _, _, c_kind, c_event, c_key_kind, c_body, _ = entry[2]
                c_parsed = loads(c_body)
                c_touch = (classify(c_kind, c_event, c_key_kind, c_parsed, ignore)
                           if isinstance(c_parsed, dict) else None)
                entry[1] = _NOT_A_TOUCH if c_touch is None else combo(c_touch)
                entry[2] = None
            if entry[1] >= 0:
                cids.append(entry[1])
                times.append(entry[0])
                if not entry[3]:
                    entry[3] = True
                    result.touchpoints += 1
        if len(cids) < len(recent):
            recent = deque(e for e in recent if e[1] >= 0)
        if not cids:
            result.unattributed_conversions += 1
            result.unattributed_revenue += revenue
            continue
        _credit(chosen, sums, cids, times, ts, revenue, half_life)

    by_id = list(combos)
    for model in chosen:
        tables: dict[str, dict[str, tuple[float, float]]] = {}
        for d, dimension in enumerate(DIMENSIONS):
            table: dict[str, list[float]] = {}
            for cid, (credited, earned) in sums[model].items():
                key = by_id[cid][d]
                sofar = table.get(key)
                if sofar is None:
                    table[key] = [credited, earned]
                else:
                    sofar[0] += credited
                    sofar[1] += earned
            tables[dimension] = {k: (v[0], v[1]) for k, v in table.items()}
        result.credit[model] = tables
    return result


def _rows(dimension: str, credited: Mapping[str, tuple[float, float]],
          costs: Mapping[str, float]) -> list[dict[str, Any]]:
    """One dimension's rows, with cost and ROAS; a cost with no credit shows as a row
    with nothing earned (ROAS 0), so spend that earned nothing is not hidden."""
    rows = []
    for key in set(credited) | set(costs):
        conversions, revenue = credited.get(key, (0.0, 0.0))
        cost = costs.get(key)
        rows.append((-round(revenue, 2), key, {
            "key": key, "conversions": round(conversions, 4), "revenue": round(revenue, 2),
            "cost": None if cost is None else round(cost, 2),
            "roas": round(revenue / cost, 4) if cost else None,
        }))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [row for _, _, row in rows]


def _costs_by_dimension(costs: Mapping[tuple[str, str], float] | None,
                        ) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {d: {} for d in DIMENSIONS}
    for (dimension, key), amount in (costs or {}).items():
        if dimension not in out:
            raise ValueError(f"costs: unknown dimension {dimension!r}; use "
                             f"{', '.join(DIMENSIONS)}")
        out[dimension][key.lower() if dimension == "channel" else key] = float(amount)
    return out


def attribution_report(conn: Connection, *, since_ms: int, until_ms: int,
                       settings: AttributionSettings | None = None,
                       models: Sequence[str] = MODELS,
                       costs: Mapping[tuple[str, str], float] | None = None,
                       source: str = "auto") -> dict[str, Any]:
    """Conversions and revenue in [since_ms, until_ms) credited by each model to each
    channel, campaign and journey, with cost and ROAS from `costs` ((dimension, key) →
    amount). Rows are sorted by revenue (highest first), then key."""
    settings = settings or AttributionSettings()
    by_dimension = _costs_by_dimension(costs)
    found = attribute(conn, since_ms=since_ms, until_ms=until_ms, settings=settings,
                      models=models, source=source)
    return {
        "since": since_ms, "until": until_ms,
        "goal_events": list(settings.goal_events),
        "lookback_ms": settings.lookback_ms, "half_life_ms": settings.half_life_ms,
        "conversions": found.conversions, "revenue": round(found.revenue, 2),
        "touchpoints": found.touchpoints,
        "source": found.source,
        "unattributed": {"conversions": found.unattributed_conversions,
                         "revenue": round(found.unattributed_revenue, 2)},
        "models": {
            model: {dimension: _rows(dimension, tables[dimension], by_dimension[dimension])
                    for dimension in DIMENSIONS}
            for model, tables in found.credit.items()
        },
    }
