"""Helpers of the dashboard's operator-page tests: sign in, post forms with the
session's CSRF token, check that a page needs a session and leaks nothing without one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kanal_testing import App
from test_dashboard import csrf_of, page_data, sign_in

__all__ = ["assert_csrf_refused", "assert_signed_out", "csrf_of", "html_of", "page_data",
           "ids_of", "journey_app", "post", "signed_in"]


def signed_in(env: App) -> str:
    """Sign in; the session's CSRF token."""
    assert sign_in(env).status_code == 303
    return csrf_of(env)


def html_of(env: App, path: str, status: int = 200) -> str:
    """GET a page, check its status, return its HTML."""
    r = env.client.get(path)
    assert r.status_code == status, (path, r.status_code, r.get_data(as_text=True)[:2000])
    return str(r.get_data(as_text=True))


def post(env: App, path: str, csrf: str, **form: str) -> Any:
    """POST a dashboard form with the session's CSRF token."""
    return env.client.post(path, data={"csrf": csrf, **form})


def assert_csrf_refused(env: App, path: str, **form: str) -> None:
    """A POST without the token, or with a wrong one, is refused (403) and changes nothing
    the caller can't check itself."""
    for data in ({**form}, {"csrf": "wrong", **form}):
        r = env.client.post(path, data=data)
        assert r.status_code == 403, (path, r.status_code)
        assert "Request refused" in r.get_data(as_text=True)


def assert_signed_out(env: App, paths: list[str], secrets: list[str],
                      posts: list[str] = ()) -> None:  # type: ignore[assignment]
    """Without a session every page redirects to the sign-in, showing none of `secrets`
    (personal data), and every form POST is refused the same way."""
    client = env.app.test_client()
    for path in paths:
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["Location"].startswith("/dashboard/login"), path
        # The redirect names the page asked for (what the visitor typed), nothing else.
        location = r.headers["Location"]
        body = r.get_data(as_text=True).replace(location, "").replace(
            location.replace("&", "&amp;"), "")
        for secret in secrets:
            assert secret not in body, (path, secret)
    for path in posts:
        r = client.post(path, data={"confirm": "yes"})
        assert r.status_code == 303 and r.headers["Location"] == "/dashboard/login", path


def ids_of(html: str, attribute: str) -> list[str]:
    """The values of `data-ATTRIBUTE="…"` in page order."""
    return re.findall(rf'data-{attribute}="([^"]*)"', html)


@contextmanager
def journey_app(tmp_path: Path, journeys: dict[str, str]) -> Iterator[tuple[Any, App]]:
    """A journeys world (journeys_util.Journeys: a log, the processor with journeys, a
    timer worker on a fake clock) with `journeys` loaded, and a dashboard app on its
    database with an admin key: (world, app)."""
    from journeys_util import Journeys

    from kanal_collector.app import close_app, create_app
    from kanal_collector.config import Config
    from kanal_collector.store.keys import create_key

    env = Journeys(tmp_path)
    for name, text in journeys.items():
        env.write(name, text)
    env.sync()
    key = create_key(env.conn, "admin", env.now_ms())
    app = create_app(Config(db=env.log.db.target, journeys_dir=env.dir), clock=env.clock)
    try:
        yield env, App(app=app, client=app.test_client(), db_path=env.log.db.target,
                       keys={"admin": key}, clock=env.clock)
    finally:
        close_app(app)
        env.close()


WELCOME = """\
    trigger: {event: Signed Up}
    goal: {event: Order Completed, within: 7d}
    steps:
      - send: welcome
        channel: email
      - wait: 1d
      - if: {trait: vip, eq: true}
        then: [{send: vip_offer, channel: email}]
        else: [{send: reminder, channel: email}]
    """
