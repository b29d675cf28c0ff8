"""Ads audiences in the admin API (/api/audiences) and on the dashboard's Audiences page:
status, errors, and a sync asked for (with the dashboard's sign-in, CSRF and CSP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kanal_testing import App, make_app
from test_dashboard import assert_hardened, csrf_of, page_data, sign_in

from kanal_collector.app import close_app
from kanal_collector.audiences.worker import due_reason
from kanal_collector.store import audience_syncs as syncs
from kanal_collector.store.db import transaction

AUDIENCES = {"vips_export": {"destination": "csv", "segment": "vips", "path": "v.csv"},
             "paused": {"destination": "csv", "path": "p.csv", "enabled": False}}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "kanal.db", sections={"audiences": AUDIENCES})
    yield app
    close_app(app.app)


def bearer(env: App) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.keys['admin']}"}


def test_the_api_lists_and_asks_for_syncs(env: App) -> None:
    assert env.client.get("/api/audiences").status_code == 401
    listed = env.client.get("/api/audiences", headers=bearer(env)).get_json()["audiences"]
    assert [(a["name"], a["status"]) for a in listed] == [("paused", "disabled"),
                                                         ("vips_export", "never synced")]
    one = env.client.get("/api/audiences/vips_export", headers=bearer(env)).get_json()
    assert one["destination"] == "csv" and one["segment"] == "vips" and one["runs"] == []
    assert "path" not in one  # the destination's settings are not shown
    r = env.client.post("/api/audiences/vips_export/sync", headers=bearer(env))
    assert r.status_code == 202 and r.get_json() == {"name": "vips_export",
                                                      "requested": True}
    conn = env.app.extensions["kanal"].db.conn()
    now = int(env.clock.now() * 1000)
    assert syncs.sync_state(conn, "vips_export")["requested_at"] == now
    assert due_reason(syncs.sync_state(conn, "vips_export"), now) == "request"
    r = env.client.post("/api/audiences/paused/sync", headers=bearer(env))
    assert r.status_code == 400 and r.get_json()["code"] == "disabled"
    r = env.client.get("/api/audiences/nope", headers=bearer(env))
    assert r.status_code == 404 and r.get_json() == {
        "code": "not_found", "message": "no audience named 'nope'"}


def test_the_page_shows_errors_and_syncs_with_csrf(env: App) -> None:
    conn = env.app.extensions["kanal"].db.conn()
    with transaction(conn):
        syncs.update_sync(conn, "vips_export", failures=2, retry_at=1_790_000_060_000,
                          last_error="can't write v.csv: Permission denied",
                          error_at=1_790_000_000_000)
    sign_in(env)
    r = env.client.get("/dashboard/audiences")
    assert_hardened(r)
    html = r.get_data(as_text=True)
    assert 'data-audience="vips_export" data-status="failing"' in html
    assert "vips_export: can&#39;t write v.csv: Permission denied" in html
    assert page_data(html) == env.client.get("/api/audiences", headers=bearer(env)).get_json()
    # Sync now: refused without the CSRF token, done with it
    r = env.client.post("/dashboard/audiences/vips_export/sync")
    assert r.status_code == 403
    assert syncs.sync_state(conn, "vips_export")["requested_at"] is None
    r = env.client.post("/dashboard/audiences/vips_export/sync",
                        data={"csrf": csrf_of(env)})
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/dashboard/audiences?message=vips_export")
    assert syncs.sync_state(conn, "vips_export")["requested_at"] is not None
    assert syncs.sync_state(conn, "vips_export")["retry_at"] is None
    r = env.client.post("/dashboard/audiences/paused/sync", data={"csrf": csrf_of(env)})
    assert r.status_code == 404
