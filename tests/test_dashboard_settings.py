"""The dashboard's Settings page: sources and keys (create with CSRF, a new key shown
once and working at once; revoke), channel checks through setup_checks (what `kanal
plugins --check` runs), sign-in required."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dashboard_util import (
    assert_csrf_refused,
    assert_signed_out,
    html_of,
    ids_of,
    page_data,
    post,
    signed_in,
)
from kanal_testing import App, make_app
from test_reports_api import _basic

from kanal_collector.app import close_app
from kanal_collector.store.keys import lookup_key


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("KANAL_TEST_SMTP_PASSWORD", "pw")
    app = make_app(tmp_path / "kanal.db", sections={"channels": {
        "console": {}, "mail": {"type": "email", "host": "smtp.example",
                                "from": "shop@example.com", "username": "shop",
                                "password": {"env": "KANAL_TEST_SMTP_PASSWORD"}}}})
    try:
        yield app
    finally:
        close_app(app.app)


def test_settings_need_a_session(env: App) -> None:
    assert_signed_out(env, ["/dashboard/settings"], [env.keys["admin"][:10]],
                      ["/dashboard/settings/keys", "/dashboard/settings/keys/revoke",
                       "/dashboard/settings/sources"])
    client = env.app.test_client()
    r = client.post("/dashboard/settings/keys", data={"kind": "admin"})
    assert r.status_code == 303
    assert env.rows("SELECT count(*) FROM keys") == [(3,)]


def test_sources_and_keys_with_csrf(env: App) -> None:
    csrf = signed_in(env)
    html = html_of(env, "/dashboard/settings")
    assert ids_of(html, "source") == ["default"]
    assert [k["kind"] for k in page_data(html)["keys"]] == ["public", "secret", "admin"]
    assert env.keys["secret"] not in html            # only prefixes are shown
    assert_csrf_refused(env, "/dashboard/settings/sources", name="app")
    assert_csrf_refused(env, "/dashboard/settings/keys", kind="secret", source="default")
    assert env.rows("SELECT count(*) FROM sources") == [(1,)]
    r = post(env, "/dashboard/settings/sources", csrf, name="app")
    assert r.status_code == 303 and "Created source" in html_of(env, r.headers["Location"])
    r = post(env, "/dashboard/settings/sources", csrf, name="app")
    assert r.status_code == 400 and "already exists" in r.get_data(as_text=True)
    r = post(env, "/dashboard/settings/keys", csrf, kind="secret", source="app", name="backend")
    assert r.status_code == 201
    html = r.get_data(as_text=True)
    [key] = [line.split(">")[1].split("<")[0] for line in html.splitlines()
             if 'data-new-key="secret"' in line]
    assert key.startswith("sk_") and "shown only this once" in html
    assert key not in html_of(env, "/dashboard/settings")  # never again
    ok = env.client.post("/v1/track", json={"userId": "u", "event": "E"}, headers=_basic(key))
    assert ok.status_code == 200
    r = post(env, "/dashboard/settings/keys", csrf, kind="secret", source="nope")
    assert r.status_code == 400 and "no source called &#39;nope&#39;" in r.get_data(as_text=True)
    r = post(env, "/dashboard/settings/keys", csrf, kind="root")
    assert r.status_code == 400
    # Revoke: with CSRF only; the key stops working.
    assert_csrf_refused(env, "/dashboard/settings/keys/revoke", prefix=key[:10])
    r = post(env, "/dashboard/settings/keys/revoke", csrf, prefix=key[:10])
    assert r.status_code == 303
    assert f"Revoked secret key {key[:10]}" in html_of(env, r.headers["Location"])
    # (ingest's key cache forgets it within its ttl, two seconds of real time)
    info = lookup_key(env.app.extensions["kanal"].db.conn(), key)
    assert info is not None and info.revoked and info.revoked_at == int(env.clock.now() * 1000)
    r = post(env, "/dashboard/settings/keys/revoke", csrf, prefix="pk_nothing")
    assert r.status_code == 400 and "no key matches" in r.get_data(as_text=True)


def test_an_admin_key_made_here_signs_in(env: App) -> None:
    csrf = signed_in(env)
    r = post(env, "/dashboard/settings/keys", csrf, kind="admin", source="default")
    html = r.get_data(as_text=True)
    [key] = [line.split(">")[1].split("<")[0] for line in html.splitlines()
             if 'data-new-key="admin"' in line]
    other = App(app=env.app, client=env.app.test_client(), db_path=env.db_path,
                keys={"admin": key}, clock=env.clock)
    signed_in(other)


def test_checks_are_shown(env: App, monkeypatch: pytest.MonkeyPatch) -> None:
    signed_in(env)
    html = html_of(env, "/dashboard/settings")
    checks = {f"{c['what']}/{c['name']}": c["ok"] for c in page_data(html)["checks"]}
    assert checks == {"channel/console": True, "channel/mail": True}
    monkeypatch.delenv("KANAL_TEST_SMTP_PASSWORD")   # the secret went missing since start
    html = html_of(env, "/dashboard/settings")
    checks = {f"{c['what']}/{c['name']}": c["ok"] for c in page_data(html)["checks"]}
    assert checks == {"channel/console": True, "channel/mail": False}
    assert "KANAL_TEST_SMTP_PASSWORD is not set" in html
    assert "kanal.builtin" in html and "register_channels" in html
