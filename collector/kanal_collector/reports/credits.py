"""Attribution kept as the processor applies events, so a report reads days, not events.

`AttributionStep` is a processor step (after the profiles step, in its transaction). For
each batch it finds the touchpoints and conversions (the same rules as the report that
reads the log, attribution.py and touchpoints.py) and credits every conversion under
every model, adding the credit to daily sums (store/credits.py). What a batch changes is
re-credited, and only that:

- a new conversion is credited to its profile's touchpoints from `lookback` before it;
- a late touchpoint at t re-credits its profile's conversions in [t, t + lookback];
- a merge moves the merged-away profile's rows to the survivor and re-credits all of
  the survivor's conversions;
- a copy of an order that stops counting (a trusted copy came) stops being a conversion
  and a touchpoint, and its profile's conversions around it are re-credited;
- `kanal forget` deletes a person's rows and takes their credit out (store/privacy.py);
  `kanal profiles rebuild` empties the tables and replays them with the profiles.

Re-crediting takes a conversion's stored credit out of the daily sums and puts the new
one in; a daily row that no conversion credits any more is deleted, so nothing is left
of what was taken out. Pruning the log (`kanal events prune`) leaves these tables alone:
a pruned month keeps its figures.

The tables are built with the configured `[attribution]` settings, named by their
fingerprint. When it changes (or on the first start after the upgrade) the tables are
emptied and rebuilt from the people's timelines a few hundred profiles at a time, by the
processor between and alongside batches; until then the report reads the log, as it
always did. After a prune, such a rebuild knows only the events that are left.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..money import order_id, order_revenue
from ..profiles.step import KANAL_KEY_KIND
from ..store import credits as store
from ..store.connection import Connection
from ..store.events import StoredEvent
from ..store.journeys import profiles_of_events
from .attribution_model import MODELS, Attribution, AttributionSettings, fingerprint
from .touchpoints import DIMENSIONS, MESSAGE_EVENTS, classify

__all__ = ["AttributionStep", "kept_attribution", "weights"]

log = logging.getLogger(__name__)
_BUILD_PROFILES = 300
"""Profiles rebuilt from their timelines per processor turn while credits are rebuilt."""


def weights(model: str, times: Sequence[int], at: int, half_life_ms: float) -> list[float]:
    """The share of one conversion at `at` each of its touchpoints (at `times`, oldest
    first) earns under `model`; the shares sum to 1."""
    n = len(times)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        raw = [2.0 ** (-(at - t) / half_life_ms) for t in times]
        total = sum(raw)
        return [w / total for w in raw]
    if model == "position_based":
        if n <= 2:
            return [1.0 / n] * n
        return [0.4, *([0.2 / (n - 2)] * (n - 2)), 0.4]
    raise ValueError(f"unknown model {model!r}")


def _conversion_credits(touches: Sequence[tuple[int, int, int]], at: int,
                        half_life_ms: float) -> list[store.Credit]:
    """(model index, key id, weight) of a conversion credited to `touches`
    ((timestamp, event id, key id), oldest first); a key touched twice adds up."""
    if not touches:
        return []
    times = [t for t, _, _ in touches]
    out: list[store.Credit] = []
    for m, model in enumerate(MODELS):
        per_key: dict[int, float] = {}
        for (_, _, kid), weight in zip(touches, weights(model, times, at, half_life_ms),
                                       strict=True):
            if weight:
                per_key[kid] = per_key.get(kid, 0.0) + weight
        out.extend((m, kid, weight) for kid, weight in per_key.items())
    return out


class AttributionStep:
    """Keeps attribution credits current as the processor applies events (see the
    module docstring); `background` rebuilds them while the processor is idle."""

    name = "attribution"

    def __init__(self, settings: AttributionSettings | None = None, *,
                 build_profiles: int = _BUILD_PROFILES) -> None:
        self.settings = settings or AttributionSettings()
        self.fingerprint = fingerprint(self.settings)
        self.goals = frozenset(self.settings.goal_events)
        self.ignore = frozenset(self.settings.ignore_referrers)
        self.lookback = self.settings.lookback_ms
        self.half_life = float(self.settings.half_life_ms)
        self.build_profiles = build_profiles

    # -- the state: what the tables were built with, how far a rebuild got ----------------

    def _state(self, conn: Connection) -> dict[str, Any]:
        state = store.get_state(conn)
        if state is None or state.get("fingerprint") != self.fingerprint:
            store.clear(conn)
            row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM merges").fetchone()
            state = {"fingerprint": self.fingerprint, "upto": 0, "merges": int(row[0])}
            store.set_state(conn, state)
            log.info("attribution credits: rebuilding from the people's timelines "
                     "(new [attribution] settings, or the first start with kept credits)")
        return state

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Credit what the batch changes (inside the processor's transaction)."""
        state = self._state(conn)
        upto: int | None = state.get("upto")
        touches, conversions, orders = self._classify(events)
        uncounted: set[int] = set()  # copies of orders that don't count
        recredit: set[int] = set()  # profiles whose every conversion is re-credited
        rederive: set[int] = set()  # profiles derived again from their timelines
        merges = [(int(i), int(a), int(b)) for i, a, b in conn.execute(
            "SELECT id, into_profile, from_profile FROM merges WHERE id > ? ORDER BY id",
            (int(state.get("merges", 0)),))]
        if merges:
            state["merges"] = merges[-1][0]
            store.set_state(conn, state)
            self._merges(conn, merges, upto, recredit, rederive)
        dirty: dict[int, list[tuple[int, int]]] = {}  # profile → (timestamp, event id)
        if orders:
            self._uncounted(conn, orders, {e.id for e in events}, uncounted, dirty)
        wanted = [e for e, _ in (*touches, *conversions) if e.id not in uncounted]
        owners = profiles_of_events(conn, [e.id for e in wanted]) if wanted else {}

        def mine(pid: int | None) -> bool:
            return (pid is not None and (upto is None or pid <= upto)
                    and pid not in rederive)

        if rederive:
            self._rederive(conn, sorted(rederive))
        touch_rows = []
        for event, touch in touches:
            pid = owners.get(event.id)
            if event.id not in uncounted and mine(pid):
                assert pid is not None
                touch_rows.append((pid, event.timestamp, event.id, touch))
                dirty.setdefault(pid, []).append((event.timestamp, event.id))
        if touch_rows:
            ids = store.save_keys(conn, (t for *_, t in touch_rows))
            store.add_touchpoints(conn, [(p, ts, e, ids[t]) for p, ts, e, t in touch_rows])
        new = []
        for event, revenue in conversions:
            pid = owners.get(event.id)
            if event.id not in uncounted and mine(pid):
                assert pid is not None
                new.append((event.id, pid, event.timestamp, revenue))
        store.add_conversions(conn, new)
        for eid, pid, ts, _ in new:  # the next conversion shares touchpoints with it
            dirty.setdefault(pid, []).append((ts, eid))
        redo = self._affected(conn, dirty, recredit - rederive, {c[0] for c in new})
        self._credit(conn, new, redo)
        if upto is not None:
            self._build_some(conn, state)

    def background(self, conn: Connection) -> bool:
        """Rebuild some profiles' credits when a rebuild is under way; False when none is."""
        state = self._state(conn)
        if state.get("upto") is None:
            return False
        self._build_some(conn, state)
        return True

    # -- what a batch holds -----------------------------------------------------------

    def _classify(self, events: Iterable[StoredEvent],
                  ) -> tuple[list[tuple[StoredEvent, tuple[str, str, str]]],
                             list[tuple[StoredEvent, float]], set[tuple[str, str]]]:
        touches: list[tuple[StoredEvent, tuple[str, str, str]]] = []
        conversions: list[tuple[StoredEvent, float]] = []
        orders: set[tuple[str, str]] = set()
        for event in events:
            body = event.body
            props = body.get("properties")
            if not isinstance(props, dict):
                props = {}
            if props.get("bot") is True:
                continue
            if event.type == "track" and event.event:
                oid = order_id(props)
                if oid is not None:
                    orders.add((event.event, oid))
            touch = classify(event.type, event.event, event.key_kind, body, self.ignore)
            if touch is not None:
                touches.append((event, touch))
            if event.type == "track" and event.event in self.goals:
                conversions.append((event, order_revenue(props)))
        return touches, conversions, orders

    def _uncounted(self, conn: Connection, orders: set[tuple[str, str]], batch: set[int],
                   uncounted: set[int], dirty: dict[int, list[tuple[int, int]]]) -> None:
        """Copies of the batch's orders that are not counted: the batch's are skipped;
        an earlier one that counted until now stops being a conversion or touchpoint."""
        found = store.uncounted_copies(conn, orders)
        uncounted.update(found)
        earlier = {e: ts for e, ts in found.items() if e not in batch}
        if not earlier:
            return
        converted = store.conversions_by_id(conn, list(earlier))
        store.delete_conversions(conn, [c[0] for c in converted])
        owners = profiles_of_events(conn, list(earlier))
        gone = [(owners[e], ts, e) for e, ts in earlier.items() if e in owners]
        store.delete_touchpoints(conn, gone)
        # The conversions after one that goes, or after a touchpoint that goes, change.
        for pid, ts, eid in [*gone, *((c[1], c[2], c[0]) for c in converted)]:
            dirty.setdefault(pid, []).append((ts, eid))

    def _merges(self, conn: Connection, merges: Sequence[tuple[int, int, int]],
                upto: int | None, recredit: set[int], rederive: set[int]) -> None:
        """Follow merges: move rows to the survivor (or derive it again, or leave it to
        a rebuild under way)."""
        final: dict[int, int] = {}
        for _, into, other in merges:
            final[other] = into
        for _, into, other in merges:
            if upto is None or (into <= upto and other <= upto):
                store.move_profile(conn, into, other)
                recredit.add(into)
            elif into <= upto:  # `other` was not built yet: derive the survivor again
                rederive.add(into)
            else:  # the rebuild reaches the survivor later, with every event
                store.delete_profiles(conn, [other])

        def last(pid: int) -> int:
            seen = set()
            while pid in final and pid not in seen:
                seen.add(pid)
                pid = final[pid]
            return pid

        for group in (recredit, rederive):
            moved = {last(p) for p in group}
            group.clear()
            group.update(moved)
        recredit -= rederive

    # -- crediting --------------------------------------------------------------------

    def _affected(self, conn: Connection, dirty: dict[int, list[tuple[int, int]]],
                  everything: set[int], new: set[int]) -> list[store.Conversion]:
        """The stored conversions a batch's touchpoints (or removals) and merges change."""
        out: dict[int, store.Conversion] = {}
        if everything:
            for conv in store.conversions_of(conn, sorted(everything), -2**62, 2**62):
                out[conv[0]] = conv
        if dirty:
            lo = min(ts for marks in dirty.values() for ts, _ in marks)
            hi = max(ts for marks in dirty.values() for ts, _ in marks) + self.lookback
            for conv in store.conversions_of(conn, sorted(dirty), lo, hi):
                eid, pid, ts, _ = conv
                if any((t, e) <= (ts, eid) and ts <= t + self.lookback
                       for t, e in dirty[pid]):
                    out[eid] = conv
        return [c for e, c in out.items() if e not in new]

    def _credit(self, conn: Connection, new: Sequence[store.Conversion],
                redo: Sequence[store.Conversion]) -> None:
        """Credit new conversions and re-credit `redo` (their old credit taken out)."""
        if redo:
            store.uncredit(conn, [c[0] for c in redo])
        todo = [*new, *redo]
        if not todo:
            return
        lo = min(c[2] for c in todo) - self.lookback
        hi = max(c[2] for c in todo)
        pids = sorted({c[1] for c in todo})
        touchpoints = store.touchpoints_of(conn, pids, lo, hi)
        # Each conversion's previous one (of its profile, within lookback): what it
        # shares with it is not `fresh`.
        converted: dict[int, list[tuple[int, int]]] = {}
        for eid, pid, ts, _ in store.conversions_of(conn, pids, lo, hi):
            converted.setdefault(pid, []).append((ts, eid))
        for marks in converted.values():
            marks.sort()
        credited = []
        for conv in todo:
            eid, pid, ts, _ = conv
            mine = touchpoints.get(pid, [])
            first = bisect.bisect_left(mine, (ts - self.lookback, -1, -1))
            end = bisect.bisect_right(mine, (ts, eid, 2**63))
            touches = mine[first:end]
            fresh = len(touches)
            previous: int | None = None
            others = converted.get(pid, [])
            before = bisect.bisect_left(others, (ts, eid))
            if before and touches:
                prev_ts, prev_eid = others[before - 1]
                if prev_ts >= ts - self.lookback:
                    previous = prev_ts
                    shared = bisect.bisect_right(mine, (prev_ts, prev_eid, 2**63)) - first
                    fresh = len(touches) - max(0, min(shared, len(touches)))
            credited.append((conv, len(touches), fresh, previous,
                             _conversion_credits(touches, ts, self.half_life)))
        store.credit(conn, credited)

    # -- deriving from the timelines (a rebuild) ----------------------------------------

    def _rederive(self, conn: Connection, profile_ids: Sequence[int]) -> None:
        """Delete these profiles' rows and derive them from their timelines."""
        store.delete_profiles(conn, profile_ids)
        touch_rows: list[tuple[int, int, int, tuple[str, str, str]]] = []
        new: list[store.Conversion] = []
        loads = orjson.loads
        for pid, ts, eid, kind, event, key_kind, body in store.timeline_candidates(
                conn, profile_ids, goal_events=self.settings.goal_events,
                message_events=list(MESSAGE_EVENTS), kanal_key_kind=KANAL_KEY_KIND):
            parsed = loads(body)
            if not isinstance(parsed, dict):
                continue
            props = parsed.get("properties")
            if not isinstance(props, dict):
                props = {}
            if props.get("bot") is True:
                continue
            touch = classify(kind, event, key_kind, parsed, self.ignore)
            if touch is not None:
                touch_rows.append((pid, ts, eid, touch))
            if kind == "track" and event in self.goals:
                new.append((eid, pid, ts, order_revenue(props)))
        if touch_rows:
            ids = store.save_keys(conn, (t for *_, t in touch_rows))
            store.add_touchpoints(conn, [(p, ts, e, ids[t]) for p, ts, e, t in touch_rows])
        store.add_conversions(conn, new)
        self._credit(conn, new, ())

    def _build_some(self, conn: Connection, state: dict[str, Any]) -> None:
        upto = int(state["upto"])
        pids = [int(r[0]) for r in conn.execute(
            "SELECT id FROM profiles WHERE id > ? ORDER BY id LIMIT ?",
            (upto, self.build_profiles))]
        if pids:
            self._rederive(conn, pids)
            state["upto"] = pids[-1]
            top = conn.execute("SELECT MAX(id) FROM profiles").fetchone()[0] or pids[-1]
            before, after = 10 * upto // top, 10 * pids[-1] // top
            if after > before:  # a line per tenth of the people
                log.info("attribution credits: %d%% of the people rebuilt", 10 * after)
        else:
            state["upto"] = None
            log.info("attribution credits: rebuilt; reports read them from now on")
        store.set_state(conn, state)


def kept_attribution(conn: Connection, *, since_ms: int, until_ms: int,
                     settings: AttributionSettings, models: Sequence[str],
                     ) -> Attribution | None:
    """The attribution of conversions in [since, until) from the kept credits, or None
    when they aren't kept for these settings (or are being rebuilt)."""
    state = store.get_state(conn)
    if (state is None or state.get("fingerprint") != fingerprint(settings)
            or state.get("upto") is not None):
        return None
    sums: dict[tuple[int, int], list[float]] = {}
    parts: list[list[tuple[int, int, float, float]]] = []
    # Whole days from their sums, whole hours of the days' parts from theirs, and only
    # what is left (under an hour at each end) from the conversions themselves.
    days, edges = store.days_and_edges(since_ms, until_ms)
    if days is not None:
        parts.append(store.daily_sums(conn, *days))
    for lo, hi in edges:
        hours, rest = store.whole_units(lo, hi, store.HOUR_MS)
        if hours is not None:
            parts.append(store.hourly_sums(conn, *hours))
        parts.extend(store.credit_sums(conn, a, b) for a, b in rest)
    for part in parts:
        for model, kid, conversions, revenue in part:
            entry = sums.get((model, kid))
            if entry is None:
                sums[(model, kid)] = [conversions, revenue]
            else:
                entry[0] += conversions
                entry[1] += revenue
    result = Attribution(source="kept")
    (result.conversions, result.revenue, result.unattributed_conversions,
     result.unattributed_revenue, fresh) = store.conversion_totals(conn, since_ms, until_ms)
    result.touchpoints = store.credited_touchpoints(conn, since_ms, until_ms,
                                                    settings.lookback_ms, fresh)
    names = store.keys(conn, {kid for _, kid in sums})
    for name in models:
        m = MODELS.index(name)
        tables: dict[str, dict[str, tuple[float, float]]] = {}
        for d, dimension in enumerate(DIMENSIONS):
            table: dict[str, list[float]] = {}
            for (sm, kid), (credited, earned) in sums.items():
                if sm != m:
                    continue
                key = names[kid][d]
                sofar = table.setdefault(key, [0.0, 0.0])
                sofar[0] += credited
                sofar[1] += earned
            tables[dimension] = {k: (v[0], v[1]) for k, v in table.items()}
        result.credit[name] = tables
    return result
