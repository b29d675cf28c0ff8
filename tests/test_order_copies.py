"""The same order sent twice (same order_id) counts once in every report, as in the
profile: the copy from a trusted source (secret key, import, Kanal) counts, else the first
received. Each report is checked: the profile, the KPI overview, attribution (and so
costs/ROAS), journey funnels, experiments, segments, and journey triggers."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import App, connect_to, downgrade, make_app

from kanal_collector.clock import utc_iso
from kanal_collector.journeys.timers import sync
from kanal_collector.profiles.segments import parse_segments
from kanal_collector.reports import views
from kanal_collector.store import identities as identity_store
from kanal_collector.store import segments as segment_store
from kanal_collector.store.db import transaction
from kanal_collector.store.reports import daily_aggregates, track_daily
from kanal_collector.store.schema import MIGRATIONS, migrate

DAY = 86_400_000
JOURNEY = """
    name: cart
    trigger: {event: Product Added}
    entry: {rule: every_time}
    goal: {event: Order Completed, within: 7d}
    steps:
      - split:
          arms:
            - {name: a, weight: 50, steps: [{wait: 1d}]}
            - {name: b, weight: 50, steps: [{wait: 1d}]}
"""
THANKS = """
    name: thanks
    trigger: {event: Order Completed}
    entry: {rule: every_time}
    steps:
      - exit: thanked
"""
SEGMENTS = {"segments": [
    {"name": "two-orders", "all": [{"event": "Order Completed", "min": 2}]},
    {"name": "big-order", "all": [{"event": "Order Completed",
                                   "where": {"revenue": {"gte": 45}}}]},
]}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def env(tmp_path: Path) -> App:
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    (journeys / "cart.yaml").write_text(textwrap.dedent(JOURNEY), encoding="utf-8")
    (journeys / "thanks.yaml").write_text(textwrap.dedent(THANKS), encoding="utf-8")
    app = make_app(tmp_path / "kanal.db", journeys_dir=journeys)
    with transaction(_runtime(app).db.conn()) as conn:
        sync(conn, journeys, int(app.clock.now() * 1000))
        segment_store.put_segment_definitions(
            conn, {s.name: s.definition for s in parse_segments(SEGMENTS)}, 0)
    return app


def _runtime(app: App) -> Any:
    return app.app.extensions["kanal"]


def _send(app: App, key: str, *messages: dict[str, Any]) -> None:
    r = app.client.post("/v1/batch", json={"batch": list(messages)}, headers=_auth(key))
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["failed"] == 0 if "failed" in r.get_json() else True


def _process(app: App) -> None:
    app.process()


def _order(user: str, order: str, revenue: float, minutes_ago: int,
           **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "Order Completed",
            "messageId": f"{order}-{revenue}-{minutes_ago}",
            "timestamp": utc_iso(1_790_000_000 - minutes_ago * 60),
            "properties": {"order_id": order, "revenue": revenue, "currency": "EUR",
                           **extra}}


def _visit(user: str, minutes_ago: int) -> list[dict[str, Any]]:
    at = utc_iso(1_790_000_000 - minutes_ago * 60)
    return [{"type": "identify", "userId": user, "timestamp": at,
             "traits": {"email": f"{user}@example.com"}},
            {"type": "page", "userId": user, "timestamp": at,
             "context": {"campaign": {"source": "news", "medium": "email", "name": "spring"}}},
            {"type": "track", "userId": user, "event": "Product Added", "timestamp": at,
             "properties": {"product_id": "p1"}}]


def _scenario(env: App, *, same_batch: bool) -> None:
    """ann: o1 from the snippet (40) then the backend (50): 50 counts.
    bo: o2 twice from the snippet (10, then 99): the first, 10, counts.
    cy: o3 from the backend (70), then from the snippet (5): 70 counts."""
    secret, public = env.keys["secret"], env.keys["public"]
    _send(env, secret, *_visit("ann", 120), *_visit("bo", 120), *_visit("cy", 120))
    _process(env)
    snippet = [_order("ann", "o1", 40, 60), _order("bo", "o2", 10, 60),
               _order("bo", "o2", 99, 59)]
    backend = [_order("ann", "o1", 50, 59), _order("cy", "o3", 70, 60)]
    late_snippet = [_order("cy", "o3", 5, 58)]
    _send(env, public, *snippet)
    if not same_batch:
        _process(env)
    _send(env, secret, *backend)
    if not same_batch:
        _process(env)
    _send(env, public, *late_snippet)
    _process(env)


@pytest.mark.parametrize("same_batch", [False, True], ids=["apart", "one-batch"])
def test_every_report_counts_an_order_once(env: App, same_batch: bool) -> None:
    _scenario(env, same_batch=same_batch)
    conn = _runtime(env).db.conn()
    config = _runtime(env).config
    now = int(env.clock.now() * 1000)
    expected_revenue = 50 + 10 + 70

    # the profiles
    for user, orders, revenue in (("ann", 1, 50), ("bo", 1, 10), ("cy", 1, 70)):
        pid = identity_store.find_profile(conn, user, "user_id")
        assert pid is not None
        r = env.client.get(f"/api/profiles/{pid}", headers=_admin(env)).get_json()
        assert (r["computed"]["orders"], r["computed"]["revenue"]) == (orders, revenue), user

    # the KPI overview
    overview = views.overview_view(conn, config, since_ms=now - DAY, until_ms=now + 1)
    assert overview["totals"]["conversions"] == 3
    assert overview["totals"]["revenue"] == expected_revenue

    # attribution (and with a cost, ROAS)
    env.client.put("/api/costs/channel/email", json={"amount": 13}, headers=_admin(env))
    doc = env.client.get("/api/reports/attribution?since=1d&models=linear",
                         headers=_admin(env)).get_json()
    assert (doc["conversions"], doc["revenue"]) == (3, expected_revenue)
    [email] = doc["models"]["linear"]["channel"]
    assert (email["key"], email["revenue"], email["roas"]) == ("email", 130.0, 10.0)

    # journey funnels and experiments: three runs converted, each order once
    funnel = views.journey_view(conn, "cart", since_ms=now - DAY, until_ms=now + 1)
    totals = funnel["totals"]
    assert (totals["entered"], totals["converted"], totals["revenue"]) == \
        (3, 3, expected_revenue)
    experiments = views.experiments_view(conn, since_ms=now - DAY, until_ms=now + 1,
                                         journey="cart")
    arms = experiments["experiments"][0]["arms"]
    assert sum(a["conversions"] for a in arms) == 3
    assert sum(a["revenue"] for a in arms) == expected_revenue

    # a journey triggered by the order runs once per order, not once per copy
    runs = conn.execute("SELECT count(*) FROM journey_runs WHERE journey = 'thanks'")
    assert runs.fetchone()[0] == 3

    # segments count the order once, with the properties of the copy that counts
    members = {seg: {p for p, _ in segment_store.segment_members(conn, seg)}
               for seg in ("two-orders", "big-order")}
    ann = identity_store.find_profile(conn, "ann", "user_id")
    cy = identity_store.find_profile(conn, "cy", "user_id")
    assert members == {"two-orders": set(), "big-order": {ann, cy}}


def _admin(env: App) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.keys['admin']}"}


def test_forgetting_a_person_takes_only_the_counted_copy_out(env: App) -> None:
    _scenario(env, same_batch=False)
    conn = _runtime(env).db.conn()
    from kanal_collector.profiles.privacy import forget

    forget(conn, "bo", int(env.clock.now() * 1000))
    _, tracks = daily_aggregates(conn)
    orders = sum(n for (_, name), (n, _) in tracks.items() if name == "Order Completed")
    revenue = sum(r for (_, name), (_, r) in tracks.items() if name == "Order Completed")
    assert (orders, revenue) == (2, 120.0)


def test_a_rebuild_counts_the_same(env: App) -> None:
    _scenario(env, same_batch=False)
    conn = _runtime(env).db.conn()
    before = daily_aggregates(conn)
    copies = conn.execute("SELECT * FROM order_copies ORDER BY event_id").fetchall()
    from kanal_collector.profiles.rebuild import rebuild

    rebuild(conn, env.clock)
    assert daily_aggregates(conn) == before
    assert conn.execute("SELECT * FROM order_copies ORDER BY event_id").fetchall() == copies


def test_the_migration_counts_existing_copies_once(env: App) -> None:
    """A database from before: every copy in track_daily, journey conversions at the
    first copy's value. Migration 10 corrects both."""
    _scenario(env, same_batch=False)
    conn = connect_to(env.db)
    expected = track_daily(conn)
    conversions = conn.execute(
        "SELECT run_id, revenue FROM journey_conversions ORDER BY run_id").fetchall()
    # What version 9 had: the uncounted copies in the daily figures, no order_copies.
    for day, name, value in conn.execute(
            "SELECT timestamp / 86400000, event, value FROM order_copies WHERE counted = 0"
    ).fetchall():
        conn.execute("UPDATE track_daily SET count = count + 1, revenue = revenue + ? "
                     "WHERE day = ? AND event = ?", (value, day, name))
    conn.execute("UPDATE journey_conversions SET revenue = 40 WHERE revenue = 50")
    version = next(i for i, m in enumerate(MIGRATIONS, 1) if m.__name__ == "_m012_order_copies")
    downgrade(conn, version - 1)
    assert track_daily(conn) != expected
    migrate(conn)
    tracks = track_daily(conn)
    assert tracks.keys() == expected.keys()
    for key, (n, revenue) in expected.items():
        assert tracks[key][0] == n
        assert tracks[key][1] == pytest.approx(revenue)
    assert conn.execute("SELECT run_id, revenue FROM journey_conversions ORDER BY run_id"
                        ).fetchall() == conversions
    conn.close()
