"""Email tracking over HTTP: redirects, the pixel, unsubscribe (RFC 8058), preferences,
and the events they write. In-process app on a real SQLite file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import App, make_app

from kanal_collector.app import build_processor, close_app
from kanal_collector.messages.eligibility import ChannelInfo, Policy, check, load_person
from kanal_collector.profiles.state import computed
from kanal_collector.profiles.views import lookup
from kanal_collector.store import profiles as profile_store
from kanal_collector.tracking import prepare_email
from kanal_collector.tracking.routes import PIXEL

BASE = "https://t.example.com"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
PERSON = {"User-Agent": CHROME}
HTML = (
    '<html><body><p>Hi!</p><a href="https://shop.example/cart?id=9&amp;utm_source=mail">'
    'Cart</a> <a href="https://shop.example/sale">Sale</a> '
    '<a href="mailto:help@shop.example">Help</a> '
    '<a href="%%preferences_url%%">Preferences</a></body></html>'
)


@dataclass
class Sent:
    env: App
    html: str
    headers: dict[str, str]
    profile_id: int

    def click_tokens(self) -> list[str]:
        return re.findall(r'href="https://t\.example\.com/c/([^"]+)"', self.html)

    def open_token(self) -> str:
        match = re.search(r'src="https://t\.example\.com/o/([^"]+)\.gif"', self.html)
        assert match
        return match.group(1)

    def unsubscribe_path(self) -> str:
        match = re.match(r"<https://t\.example\.com(/u/[^>]+)>", self.headers["List-Unsubscribe"])
        assert match
        return match.group(1)

    def preferences_path(self) -> str:
        match = re.search(r'href="https://t\.example\.com(/p/[^"]+)"', self.html)
        assert match
        return match.group(1)

    def tracking_events(self) -> list[dict[str, Any]]:
        return [e for e in self.env.events() if e["origin"] == "email"]

    def process(self) -> None:
        processor = build_processor(self.env.app.extensions["kanal"].db)
        processor.catch_up()
        processor.close()

    def subscriptions(self) -> dict[str, Any]:
        conn = self.env.app.extensions["kanal"].db.conn()
        state = profile_store.load_states(conn, [self.profile_id])[self.profile_id]
        return computed(state)["subscriptions"]  # type: ignore[no-any-return]


def _send(env: App, *, outbox_id: int = 1, topic: str | None = "offers",
          html: str = HTML, traits: dict[str, Any] | None = None, **kwargs: Any) -> Sent:
    r = env.client.post("/v1/identify", auth=(env.keys["secret"], ""), json={
        "userId": "u1", "traits": {"email": "ann@example.com", **(traits or {})}})
    assert r.status_code == 200, r.get_json()
    db = env.app.extensions["kanal"].db
    processor = build_processor(db)
    processor.catch_up()
    processor.close()
    pid = lookup(db.conn(), "u1")
    assert pid is not None
    out, headers = prepare_email(
        db.conn(), outbox_id=outbox_id, profile_id=pid, message="cart-reminder",
        journey="abandoned-cart", html=html, base_url=BASE, now=env.clock.now(),
        topic=topic, **kwargs)
    return Sent(env, out, headers, pid)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[App]:
    app = make_app(tmp_path / "kanal.db", sections={"tracking": {
        "base_url": BASE, "topics": ["news"], "bot_click_seconds": 10}})
    try:
        yield app
    finally:
        close_app(app.app)


@pytest.fixture
def sent(env: App) -> Sent:
    s = _send(env)
    env.clock.advance(120)  # people click minutes later; scanners within seconds
    return s


def test_prepare_email_rewrites_records_and_adds_headers(sent: Sent) -> None:
    assert len(sent.click_tokens()) == 2
    assert 'href="mailto:help@shop.example"' in sent.html
    assert sent.html.index("/o/") < sent.html.index("</body>")
    assert sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.env.rows("SELECT outbox_id, idx, url FROM tracking_links ORDER BY idx") == [
        (1, 0, "https://shop.example/cart?id=9&utm_source=mail"),
        (1, 1, "https://shop.example/sale")]


def test_headers_variants(env: App) -> None:
    s = _send(env, mailto="unsubscribe@shop.example")
    assert re.fullmatch(r"<https://t\.example\.com/u/[\w-]+>, "
                        r"<mailto:unsubscribe@shop\.example\?subject=unsubscribe%201>",
                        s.headers["List-Unsubscribe"])
    _, headers = prepare_email(env.app.extensions["kanal"].db.conn(), outbox_id=2,
                               profile_id=s.profile_id, message=None, journey=None,
                               html="<p>reset</p>", base_url=BASE, now=0, marketing=False)
    assert headers == {}  # transactional: no unsubscribe
    _, headers = prepare_email(env.app.extensions["kanal"].db.conn(), outbox_id=3,
                               profile_id=s.profile_id, message=None, journey=None,
                               html="", base_url="http://localhost:8000", now=0)
    assert "List-Unsubscribe-Post" not in headers  # RFC 8058 one-click needs https


def test_click_redirects_to_the_recorded_url_only(sent: Sent) -> None:
    first, second = sent.click_tokens()
    r = sent.env.client.get(f"/c/{first}", headers=PERSON)
    assert r.status_code == 302
    assert r.headers["Location"] == "https://shop.example/cart?id=9&utm_source=mail"
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in r.headers
    r = sent.env.client.get(f"/c/{second}?url=https://evil.example", headers=PERSON)
    assert r.headers["Location"] == "https://shop.example/sale"


def _tamper_index(token: str, index: int) -> str:
    import base64

    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[9:11] = index.to_bytes(2, "big")
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("attempt", [
    lambda t: f"/c/{t[:-1]}{'A' if t[-1] != 'A' else 'B'}?url=https://evil.example",
    lambda t: f"/c/{_tamper_index(t, 1)}",
    lambda t: f"/c/{_tamper_index(t, 7)}",
    lambda t: "/c/https://evil.example",
    lambda t: "/c/https%3A%2F%2Fevil.example",
    lambda t: "/c/?url=https://evil.example",
    lambda t: "/c//evil.example",
    lambda t: f"/c/{t}/https://evil.example",
    lambda t: "/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
])
def test_open_redirect_attempts_never_redirect(sent: Sent, attempt: Any) -> None:
    r = sent.env.client.get(attempt(sent.click_tokens()[0]), headers=PERSON)
    assert r.status_code == 404
    assert "Location" not in r.headers
    assert "evil" not in r.get_data(as_text=True)
    assert sent.tracking_events() == []


def test_click_event_names_and_attribution(sent: Sent) -> None:
    sent.env.client.get(f"/c/{sent.click_tokens()[1]}", headers=PERSON)
    [event] = sent.tracking_events()
    assert (event["type"], event["event"], event["key_kind"], event["user_id"]) == (
        "track", "Email Link Clicked", "kanal", "u1")
    assert event["body"]["properties"] == {
        "outbox_id": 1, "message": "cart-reminder", "journey": "abandoned-cart",
        "channel": "email", "topic": "offers", "link_url": "https://shop.example/sale",
        "link_index": 1, "profile_id": sent.profile_id}
    assert event["body"]["context"]["userAgent"] == CHROME
    sent.process()  # the processor files it on the profile's timeline
    assert sent.env.rows("SELECT profile_id FROM profile_events WHERE event_id = ?",
                         event["id"]) == [(sent.profile_id,)]


@pytest.mark.parametrize(("method", "headers", "after", "reason"), [
    ("HEAD", PERSON, 120, "head_request"),
    ("GET", {"User-Agent": "Mozilla/5.0 (compatible; BingPreview/1.0b)"}, 120, "link_scanner"),
    ("GET", {"User-Agent": "Barracuda Sentinel"}, 120, "link_scanner"),
    ("GET", {"User-Agent": ""}, 120, "no_user_agent"),
    ("GET", PERSON, 2, "too_fast"),
])
def test_bot_clicks_are_flagged_and_kept(env: App, method: str, headers: dict[str, str],
                                         after: float, reason: str) -> None:
    sent = _send(env)
    env.clock.advance(after)
    r = sent.env.client.open(f"/c/{sent.click_tokens()[0]}", method=method, headers=headers)
    assert r.status_code == 302  # the scanner gets where the person would
    [event] = sent.tracking_events()
    assert event["body"]["properties"]["bot"] is True
    assert event["body"]["properties"]["bot_reason"] == reason


def test_open_pixel_always_answers_the_gif(sent: Sent) -> None:
    for path in (f"/o/{sent.open_token()}.gif", "/o/forged.gif", "/o/", "/o/x/y.gif",
                 f"/o/{sent.click_tokens()[0]}.gif"):
        r = sent.env.client.get(path, headers=PERSON)
        assert r.status_code == 200, path
        assert r.data == PIXEL and r.data.startswith(b"GIF89a") and len(r.data) == 43
        assert r.headers["Content-Type"] == "image/gif"
        assert "no-store" in r.headers["Cache-Control"]
        assert "no-cache" in r.headers["Cache-Control"]
        assert r.headers["Expires"] == "0"
    [event] = sent.tracking_events()  # only the good token counted
    assert event["event"] == "Email Opened"
    assert "bot" not in event["body"]["properties"]
    assert event["body"]["properties"]["outbox_id"] == 1


def test_proxy_opens_are_flagged(sent: Sent) -> None:
    ua = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com " \
         "GoogleImageProxy)"
    sent.env.client.get(f"/o/{sent.open_token()}.gif", headers={"User-Agent": ua})
    [event] = sent.tracking_events()
    assert event["body"]["properties"]["bot_reason"] == "mail_proxy"


def test_unsubscribe_get_shows_a_form_and_changes_nothing(sent: Sent) -> None:
    r = sent.env.client.get(sent.unsubscribe_path(), headers=PERSON)
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert f'<form method="post" action="{sent.unsubscribe_path()}">' in page
    assert '<input type="hidden" name="scope" value="all">' in page
    assert "Unsubscribe from all marketing email" in page
    assert '<input type="hidden" name="scope" value="topic">' in page
    assert "Only from “offers”" in page
    assert sent.tracking_events() == []


def test_one_click_post_unsubscribes_without_cookies_or_redirects(sent: Sent) -> None:
    # As a mailbox provider sends it (RFC 8058 section 3.2): no cookies, no user agent.
    client = sent.env.app.test_client(use_cookies=False)
    r = client.post(sent.unsubscribe_path(), data="List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200
    assert "Location" not in r.headers and "Set-Cookie" not in r.headers
    [event] = sent.tracking_events()
    assert event["event"] == "Unsubscribed"
    props = event["body"]["properties"]
    # One-click means stop: all marketing email, not just the email's topic (issue 13).
    assert (props["channel"], props["topic"], props["via"], props["outbox_id"]) == (
        "email", None, "one_click", 1)


def test_multipart_one_click_and_the_pages_topic_button(sent: Sent) -> None:
    r = sent.env.client.post(sent.unsubscribe_path(),
                             data={"List-Unsubscribe": "One-Click"},
                             content_type="multipart/form-data")
    assert r.status_code == 200
    r = sent.env.client.post(sent.unsubscribe_path(), data={"scope": "topic"})
    assert r.status_code == 200
    first, second = sent.tracking_events()
    assert first["body"]["properties"]["topic"] is None  # all marketing email
    assert (second["body"]["properties"]["topic"], second["body"]["properties"]["via"]) == (
        "offers", "page")


def test_one_click_stops_every_marketing_email_channel(sent: Sent) -> None:
    sent.env.client.post(sent.unsubscribe_path(), data={"List-Unsubscribe": "One-Click"})
    sent.process()
    assert sent.subscriptions()["email"]["subscribed"] is False
    conn = sent.env.app.extensions["kanal"].db.conn()
    person = load_person(conn, sent.profile_id)
    assert person is not None
    for name in ("email", "marketing", "newsletters"):  # any channel of kind email
        for topic in (None, "offers", "news"):
            assert check(conn, person, ChannelInfo(name, "email", "email"),
                         kind="marketing", topic=topic, policy=Policy())[1] == "unsubscribed"
        assert check(conn, person, ChannelInfo(name, "email", "email"),
                     kind="transactional", topic=None, policy=Policy()) == (
            "ann@example.com", None)  # receipts still go


def test_one_click_can_be_narrowed_to_the_topic(tmp_path: Path) -> None:
    app = make_app(tmp_path / "kanal.db", sections={"tracking": {
        "base_url": BASE, "one_click": "topic"}})
    try:
        sent = _send(app)
        sent.env.client.post(sent.unsubscribe_path(), data={"List-Unsubscribe": "One-Click"})
        sent.process()
        assert sent.subscriptions()["email"] == {"subscribed": None,
                                                 "topics": {"offers": False}}
        sent.env.client.post(sent.unsubscribe_path(), data={"scope": "all"})
        sent.process()
        assert sent.subscriptions()["email"]["subscribed"] is False
    finally:
        close_app(app.app)


def test_bad_unsubscribe_tokens_are_404(sent: Sent) -> None:
    open_as_unsub = f"/u/{sent.open_token()}"
    for path in (open_as_unsub, "/u/nope"):
        assert sent.env.client.get(path).status_code == 404
        assert sent.env.client.post(path, data={"List-Unsubscribe": "One-Click"}
                                    ).status_code == 404
    assert sent.tracking_events() == []


def test_preference_page_shows_and_saves_choices(sent: Sent) -> None:
    path = sent.preferences_path()
    page = sent.env.client.get(path).get_data(as_text=True)
    for key in ("email", "email/news", "email/offers"):
        assert f'name="sub" value="{key}" checked' in page
    token = path.rsplit("/", 1)[1]
    r = sent.env.client.post(path, data={"token": token, "sub": ["email", "email/news"]})
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "saved" in page
    assert 'value="email/offers">' in page  # now unchecked
    events = sent.tracking_events()
    assert [(e["event"], e["body"]["properties"]["channel"],
             e["body"]["properties"]["topic"]) for e in events] == [
        ("Unsubscribed", "email", "offers")]
    assert events[0]["body"]["properties"]["via"] == "preferences"


def test_preference_post_needs_the_token_in_the_form(sent: Sent) -> None:
    path = sent.preferences_path()
    assert sent.env.client.post(path, data={"sub": ["email"]}).status_code == 403
    assert sent.env.client.post(path, data={"token": "x", "sub": []}).status_code == 403
    # an unsubscribe token is no preference token
    assert sent.env.client.get(f"/p/{sent.unsubscribe_path()[3:]}").status_code == 404
    assert sent.tracking_events() == []


def test_rotate_key_cli_old_links_keep_working(env: App) -> None:
    from click.testing import CliRunner

    from kanal_collector.cli import cli

    old = _send(env, outbox_id=1)
    env.clock.advance(120)
    # warm the running app's key cache with the old key only
    assert env.client.get(f"/c/{old.click_tokens()[0]}", headers=PERSON).status_code == 302
    db = ["--db", env.db]
    result = CliRunner().invoke(cli, ["tracking", "rotate-key", *db])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(cli, ["tracking", "keys", *db]).output.splitlines()
    assert [line.split("\t")[-1] for line in listed] == ["signs", "verifies"]
    new = _send(env, outbox_id=2)
    assert new.click_tokens()[0] != old.click_tokens()[0]
    for sent in (old, new):  # signed by the old key and by the new one
        r = env.client.get(f"/c/{sent.click_tokens()[0]}", headers=PERSON)
        assert r.status_code == 302
    result = CliRunner().invoke(cli, ["tracking", "rotate-key", "--keep", "1", *db])
    assert result.exit_code == 0, result.output
    env.app.extensions["kanal.tracking"].keys.reload(
        env.app.extensions["kanal"].db.conn(), 0)  # what the next few seconds do
    for sent in (old, new):  # both keys are gone now
        assert env.client.get(f"/c/{sent.click_tokens()[0]}").status_code == 404


def test_preferences_url_cli(env: App) -> None:
    from click.testing import CliRunner

    from kanal_collector.cli import cli

    sent = _send(env)
    result = CliRunner().invoke(cli, ["tracking", "preferences-url", "ann@example.com",
                                      "--db", env.db, "--base-url", BASE])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url == BASE + sent.preferences_path()
    assert env.client.get(url.removeprefix(BASE)).status_code == 200


def test_config_keys_sign_and_verify(tmp_path: Path) -> None:
    keys = ["n" * 32, "o" * 32]
    app = make_app(tmp_path / "kanal.db", sections={"tracking": {"base_url": BASE,
                                                                 "keys": keys}})
    try:
        from kanal_collector.tracking import tokens

        sent = _send(app, keys=[k.encode() for k in keys])
        token = sent.click_tokens()[0]
        assert tokens.read_token([b"n" * 32], token, tokens.CLICK) is not None
        app.clock.advance(60)
        assert app.client.get(f"/c/{token}", headers=PERSON).status_code == 302
        assert app.rows("SELECT value FROM meta WHERE key = 'tracking_keys'") == []
    finally:
        close_app(app.app)


@pytest.mark.parametrize(("table", "message"), [
    ({"base_url": "t.example.com"}, "base_url"),
    ({"keys": ["short"]}, "keys"),
    ({"mailto": "not an address"}, "mailto"),
    ({"bot_click_seconds": -1}, "bot_click_seconds"),
    ({"topics": ["a/b"]}, "topic"),
])
def test_bad_tracking_config_fails_at_start(tmp_path: Path, table: dict[str, Any],
                                            message: str) -> None:
    from kanal_collector.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_app(tmp_path / "kanal.db", sections={"tracking": table})


def test_before_send_hook_prepares_email_content(env: App) -> None:
    from types import SimpleNamespace

    from kanal_collector.tracking.hook import email_tracking_hook

    config = env.app.extensions["kanal"].config
    hook = email_tracking_hook(config, env.clock)
    conn = env.app.extensions["kanal"].db.conn()
    row = SimpleNamespace(id=5, profile_id=1, message="m", journey=None, topic="news",
                          channel="email", kind="marketing")
    content = hook(conn, row, {"subject": "Hi", "html": '<a href="https://a.example/">a</a>',
                               "text": "a"})
    assert content["html"].startswith('<a href="https://t.example.com/c/')
    assert content["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert env.rows("SELECT outbox_id, url FROM tracking_links") == [(5, "https://a.example/")]
    row.kind, row.id = "transactional", 6
    assert "headers" not in hook(conn, row, {"html": "<p>reset</p>"})
    sms = {"text": "hi https://a.example/"}
    assert hook(conn, SimpleNamespace(**{**vars(row), "channel": "sms"}), dict(sms)) == sms
