"""The dashboard's Segments pages: definitions, member counts per day (noted by the
segment sweeper once a day), members with paging, sign-in required."""

from __future__ import annotations

import re

from dashboard_util import assert_signed_out, html_of, ids_of, page_data, signed_in
from kanal_testing import App
from test_dashboard_people import send

from kanal_collector.clock import utc_iso
from kanal_collector.profiles.segments import parse_segments
from kanal_collector.profiles.step import SegmentSweeper, sweep
from kanal_collector.store import segments as store
from kanal_collector.store.db import transaction

SEGMENTS = {"segments": [{"name": "buyers", "all": [{"event": "Order Completed"}]},
                         {"name": "vips", "all": [{"trait": "vip", "eq": True}]}]}


def apply_segments(env: App) -> None:
    """What `kanal segments apply FILE` does."""
    conn = env.app.extensions["kanal"].db.conn()
    found = parse_segments(SEGMENTS)
    now = int(env.clock.now() * 1000)
    with transaction(conn):
        store.put_segment_definitions(conn, {s.name: s.definition for s in found}, now)
    sweep(conn, now, segments=found, trigger="a", only_time_dependent=False)


def buyers(env: App, first: int, count: int) -> None:
    now = env.clock.now()
    send(env, [{"type": "track", "userId": f"b{i:03d}", "event": "Order Completed",
                "properties": {"order_id": f"o{i}", "revenue": 5},
                "timestamp": utc_iso(now - 10)} for i in range(first, first + count)])


def test_segment_pages_need_a_session(kanal_app: App) -> None:
    apply_segments(kanal_app)
    buyers(kanal_app, 0, 2)
    assert_signed_out(kanal_app, ["/dashboard/segments", "/dashboard/segments/buyers",
                                  "/dashboard/segments/buyers?after=1"], ["b000", "b001"])


def test_counts_per_day_and_members_with_paging(kanal_app: App) -> None:
    db = kanal_app.app.extensions["kanal"].db
    apply_segments(kanal_app)
    sweeper = SegmentSweeper(db, kanal_app.clock, interval=600)
    try:
        buyers(kanal_app, 0, 30)
        sweeper.run_once()
        kanal_app.clock.advance(3600)
        buyers(kanal_app, 30, 10)
        sweeper.run_once()                 # the same day: not noted again
        kanal_app.clock.advance(86_400)
        buyers(kanal_app, 40, 25)
        sweeper.run_once()
    finally:
        sweeper.close()
    signed_in(kanal_app)
    html = html_of(kanal_app, "/dashboard/segments")
    assert ids_of(html, "segment") == ["buyers", "vips"]
    assert page_data(html)["segments"] == [{"name": "buyers", "members": 65},
                                           {"name": "vips", "members": 0}]
    html = html_of(kanal_app, "/dashboard/segments/buyers")
    data = page_data(html)
    assert [h["members"] for h in data["history"]] == [30, 65]
    desk = "".join(re.findall(r'<svg class="chart for-desk .*?</svg>', html, re.S))
    bars = re.findall(r'<rect class="bar series-0"[^>]*data-value="([^"]+)"', desk)
    assert [float(v) for v in bars] == [30.0, 65.0]
    assert 'data-kpi="members" data-value="65"' in html and "Order Completed" in html
    seen = list(data["members"])
    assert len(seen) == 50
    nxt = html.split('rel="next" href="')[1].split('"')[0]
    html = html_of(kanal_app, nxt)
    seen += page_data(html)["members"]
    assert len(seen) == 65 == len(set(seen)) and 'rel="next"' not in html
    html_of(kanal_app, "/dashboard/segments/nope", 404)
