"""On-site messages, sign-up forms and web push in headless Chromium, against a real
collector process, a real SMTP server (aiosmtpd) and a push-service stand-in on loopback.

The shop's pages send a strict Content-Security-Policy (`script-src 'self'` plus the
collector) and load the loader tag from a file of their own, as a shop with such a
policy must; every page counts `securitypolicyviolation` events, which must stay none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kanal_testing import Collector, SmtpCatcher, query, start_collector
from test_snippet_browser import LOADER, wait_until
from webpush_util import VAPID_KEY, new_browser, push_service_on_loopback

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "collector" / "kanal_collector" / "static"
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""
NEWSLETTER = """\
defaults: {first_name: there}
onsite:
  title: "Hi {{ traits.first_name }}, 10% off"
  body: >-
    <p>Join our list.</p><img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>
  form:
    email: true
    consent: Yes, email me offers.
    topic: newsletter
    submit: Sign me up
    thanks: Check your inbox to confirm.
"""
SALE = """\
onsite:
  title: Spring sale
  button: Shop now
  url: /sale
"""
HERO = """\
onsite:
  title: New in
  body: "<p><a href='javascript:window.__xss=3'>Look</a> <a href='/new'>at the new mugs</a></p>"
"""
CART = """\
onsite:
  title: "{{ traits.first_name | default('You') }}, your cart misses you"
"""
RESTOCK = """\
push:
  title: Back in stock
  body: The blue mug is back
  data: {url: "https://shop.example/mug"}
"""
CAMPAIGNS = {
    "newsletter": "message: newsletter\nlayout: modal\npages: {include: [\"/\"]}\n",
    "sale": "message: sale\nlayout: banner\npages: {include: [\"/sale\"]}\nshow: {scroll: 60}\n",
    "hero": "message: hero\nlayout: slot\nslot: home-hero\npages: {include: [\"/\"]}\n",
    "leaving": "message: sale\nlayout: slide_in\npages: {include: [\"/bye\"]}\n"
               "show: {exit_intent: true}\n",
}
JOURNEYS = {
    "cart": "trigger: {event: Product Added}\nentry: {rule: every_time}\n"
            "steps:\n  - send: cart\n    channel: onsite\n    expires: 1d\n",
    "restock": "trigger: {event: Restocked}\nkind: transactional\n"
               "steps:\n  - send: restock\n    channel: webpush\n",
}


class World:
    """A collector with the shop's files, and the shop's pages served with a CSP."""

    def __init__(self, tmp: Path, shop: Any, smtp_port: int, push_url: str | None) -> None:
        self.tmp = tmp
        self.shop = shop
        for folder, files in (("messages", {"newsletter": NEWSLETTER, "sale": SALE,
                                            "hero": HERO, "cart": CART,
                                            "restock": RESTOCK}),
                              ("journeys", JOURNEYS), ("onsite", {})):
            (tmp / folder).mkdir()
            for name, text in files.items():
                (tmp / folder / f"{name}.yaml").write_text(text)
        (tmp / "kanal.toml").write_text(textwrap.dedent(f"""\
            journeys_dir = "{tmp / 'journeys'}"
            [workers]
            poll_interval = 0.05
            [messages]
            messages_dir = "{tmp / 'messages'}"
            [onsite]
            dir = "{tmp / 'onsite'}"
            site_max_age = 0
            form_min_seconds = 0
            confirm_page = "{shop.url}/confirm"
            [channels.email]
            host = "127.0.0.1"
            port = {smtp_port}
            tls = "none"
            from = "Shop <news@shop.example>"
            [channels.webpush]
            vapid_private_key = {{ env = "KANAL_TEST_VAPID_KEY" }}
            subject = "mailto:ops@shop.example"
            allow_private = true
            push_hosts = ["127.0.0.1"]
            """))
        self.collector: Collector = start_collector(
            tmp / "kanal.db", args=["--config", str(tmp / "kanal.toml")],
            env={"KANAL_TEST_VAPID_KEY": VAPID_KEY})
        loader = (LOADER.strip().replace('"WRITE_KEY"', json.dumps(self.collector.public_key))
                  .replace('"https://kanal.example.com"', json.dumps(self.collector.url)))
        self.script("/loader.js", loader)
        self.script("/kanal-sw.js", (STATIC / "kanal-sw.js").read_text())
        shop.headers["Content-Security-Policy"] = (
            f"script-src 'self' {self.collector.url}; object-src 'none'; base-uri 'none'")

    def script(self, path: str, text: str) -> None:
        self.shop.files[path] = ("application/javascript", text.encode())

    def page(self, path: str, body: str = "", scripts: tuple[str, ...] = ()) -> str:
        tags = "".join(f'<script src="{s}"></script>' for s in ("/loader.js", *scripts))
        return self.shop.add(path, tag=tags, body=body)

    def me(self, user: str) -> str:
        """A script that identifies a signed-in customer with the backend's userHash."""
        user_hash = hmac.new(self.collector.secret_key.encode(), user.encode(),
                             hashlib.sha256).hexdigest()
        path = f"/me-{user}.js"
        self.script(path, f"kanal('identify', {json.dumps(user)}, {{}}, "
                          f"{{userHash: {json.dumps(user_hash)}}});")
        return path

    def campaigns(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.tmp / "onsite" / f"{name}.yaml").write_text(text)

    def db(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return query(self.collector.db_path, sql, *args)

    def track(self, **message: Any) -> None:
        r = requests.post(f"{self.collector.url}/v1/track", json=message, timeout=10,
                          auth=(self.collector.secret_key, ""))
        assert r.status_code == 200, r.text

    def profile(self, kind: str, value: str) -> int | None:
        rows = self.db("SELECT profile_id FROM identities WHERE kind = ? AND value = ?",
                       kind, value)
        return int(rows[0][0]) if rows else None

    def processed(self) -> bool:
        """The processor has applied every event stored so far."""
        last = self.db("SELECT max(id) FROM events")[0][0] or 0
        cursor = self.db("SELECT position FROM cursors WHERE name = 'processor'")
        return bool(cursor) and cursor[0][0] >= last


@pytest.fixture
def world(tmp_path: Path, shop: Any, smtp: tuple[Any, SmtpCatcher]) -> Iterator[World]:
    controller, _ = smtp
    with push_service_on_loopback() as push:
        w = World(tmp_path, shop, controller.port, push.url)
        w.push = push  # type: ignore[attr-defined]
        try:
            yield w
        finally:
            w.collector.stop()


def anonymous_id(context: Any) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "kanal_aid")


def shadow_text(page: Any, selector: str) -> list[str]:
    """Texts of elements matching `selector` inside Kanal's shadow roots."""
    texts: list[str] = page.evaluate("""(sel) => [...document.querySelectorAll('*')]
        .filter(e => e.shadowRoot).flatMap(e => [...e.shadowRoot.querySelectorAll(sel)])
        .map(e => e.textContent)""", selector)
    return texts


def pulled(page: Any, go: Callable[[], Any]) -> None:
    """Do `go` (a navigation) and wait for its one pull's answer."""
    with page.expect_response(lambda r: r.url.endswith("/onsite/pull")):
        go()


def test_campaigns_targeting_frequency_xss_and_csp(world: World, browser: Any) -> None:
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    # Nothing on: the site document is all the snippet asks for.
    home = world.page("/", "<h1>Shop</h1><div data-kanal-slot=\"home-hero\"></div>")
    with page.expect_response(lambda r: "/onsite/site/" in r.url):
        page.goto(home)
    page.evaluate("() => kanal('identify', {first_name: '<img src=x onerror=\"window.__xss=4\">'})")
    wait_until(lambda: world.db("SELECT count(*) FROM events WHERE type = 'identify'")[0][0])
    assert not any("/kanal-onsite.js" in u or "/onsite/pull" in u for u in seen)
    assert wait_until(world.processed)

    world.campaigns(CAMPAIGNS)
    seen.clear()
    pulled(page, page.reload)
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    # The trait is text; the template's script and handlers are gone; nothing ran.
    assert dialog.get_by_role("heading").inner_text() == \
        'Hi <img src=x onerror="window.__xss=4">, 10% off'
    assert shadow_text(page, "script") == []
    assert page.evaluate("() => window.__xss") is None
    assert page.evaluate("""() => [...document.querySelectorAll('*')].filter(e => e.shadowRoot)
        .flatMap(e => [...e.shadowRoot.querySelectorAll('[onerror], a[href^="javascript"]')])
        .length""") == 0
    # The slot campaign is drawn inside the shop's slot; its javascript: link is inert.
    assert page.evaluate("""() => document.querySelector('[data-kanal-slot=home-hero] div')
        .shadowRoot.querySelector('h2').textContent""") == "New in"
    # Keyboard: focus starts inside the dialog, Tab stays inside, Escape closes it.
    assert page.evaluate("() => document.activeElement.shadowRoot.activeElement.type") == \
        "email"
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("""() => { const r = document.activeElement.shadowRoot;
            return !!(r && r.activeElement && r.activeElement.closest('[role=dialog]')); }""")
    assert dialog.get_by_label("Email", exact=True).get_attribute("type") == "email"
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    wait_until(lambda: world.db("SELECT count(*) FROM events WHERE event = "
                                "'On-site Message Dismissed'")[0][0])
    assert sum("/onsite/pull" in u for u in seen) == 1  # one request per page view
    # Once per visit: not again on this page.
    pulled(page, page.reload)
    assert page.get_by_role("dialog").count() == 0
    # The sale banner is for /sale, after scrolling 60 % of it.
    pulled(page, lambda: page.goto(world.page("/sale", "<div style='height:4000px'>sale</div>")))
    banner = page.get_by_role("region", name="Spring sale")
    assert banner.count() == 0
    page.mouse.wheel(0, 3500)
    banner.wait_for()
    assert banner.get_by_role("link", name="Shop now").get_attribute("href") == "/sale"
    # Exit intent: the pointer leaving through the top of the window.
    pulled(page, lambda: page.goto(world.page("/bye", "<p>Bye</p>")))
    leaving = page.get_by_role("region", name="Spring sale")
    assert leaving.count() == 0
    page.evaluate("""() => document.dispatchEvent(new MouseEvent('mouseout',
        {clientY: -2, relatedTarget: null, bubbles: true}))""")
    leaving.wait_for()
    assert page.evaluate("() => window.__csp") == []
    # The check can fail: an inline script is a violation here.
    page.evaluate("""() => document.body.appendChild(Object.assign(
        document.createElement('script'), {textContent: 'window.__inline = 1'}))""")
    wait_until(lambda: page.evaluate("() => window.__csp.length"), timeout=5)
    assert page.evaluate("() => [window.__inline, window.__csp.length]") == [None, 1]
    context.close()


def test_consent_comes_first(world: World, browser: Any) -> None:
    world.campaigns(CAMPAIGNS)
    loader = world.shop.files["/loader.js"][1].decode().replace(
        ",{})", ',{"requireConsent":true})')
    world.script("/loader-consent.js", loader)
    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    url = world.shop.add("/", tag='<script src="/loader-consent.js"></script>')
    page.goto(url)
    page.wait_for_function("() => window.kanal && window.kanal.track")
    page.wait_for_timeout(300)
    assert not any("/onsite/" in u or "kanal-onsite" in u for u in seen)  # nothing asked
    assert page.evaluate("() => Object.keys(localStorage).length") == 0
    assert context.cookies() == []
    assert page.get_by_role("dialog").count() == 0
    page.evaluate("() => kanal('consent', true)")
    page.get_by_role("dialog").wait_for()
    kept = "() => Object.keys(localStorage).concat(Object.keys(sessionStorage))"
    assert "kanal_o_seen" in page.evaluate(kept)
    # Opting out forgets what the on-site code remembered too.
    page.evaluate("() => kanal('optOut')")
    assert [k for k in page.evaluate(kept) if k.startswith("kanal_o_")] == []
    context.close()


def confirmation_token(smtp: tuple[Any, SmtpCatcher], to: str) -> str:
    _, catcher = smtp
    mails = wait_until(lambda: [m for r, m in catcher.received if r == [to]])
    text = mails[-1].get_body(("plain",)).get_content()
    found = re.search(r"kanal_confirm=([\w-]+)", text)
    assert found, text
    return found.group(1)


def sign_up(world: World, browser: Any, address: str) -> Any:
    """A fresh browser that signs up on the home page; returns its context."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(world.page("/"))
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Email", exact=True).fill(address)
    dialog.get_by_role("checkbox").check()
    dialog.get_by_role("button", name="Sign me up").click()
    dialog.get_by_text("Check your inbox to confirm.").wait_for()
    return context


def confirm_in(context: Any, world: World, token: str) -> None:
    page = context.new_page()
    page.goto(world.page("/confirm") + f"?kanal_confirm={token}")
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Thank you: you are subscribed.").wait_for()


def test_sign_up_double_opt_in_and_the_hijack_attempt(
        world: World, browser: Any, smtp: tuple[Any, SmtpCatcher]) -> None:
    world.campaigns({"newsletter": CAMPAIGNS["newsletter"]})
    ada = sign_up(world, browser, "ada@example.com")
    token = confirmation_token(smtp, "ada@example.com")
    confirm_in(ada, world, token)  # the same browser: it becomes Ada's
    assert wait_until(lambda: world.profile("email", "ada@example.com"))
    assert world.profile("email", "ada@example.com") == world.profile(
        "anonymous_id", anonymous_id(ada))
    # Mallory submits Vic's address; Vic confirms on her own phone. Mallory's browser
    # gets nothing of Vic's: no merge, no link.
    world.track(userId="vic", anonymousId="vic-phone", event="Signed In",
                context={"traits": {"email": "vic@example.com"}})
    assert wait_until(lambda: world.profile("email", "vic@example.com"))
    vic = world.profile("email", "vic@example.com")
    mallory = sign_up(world, browser, "vic@example.com")
    token = confirmation_token(smtp, "vic@example.com")
    phone = browser.new_context()
    phone.add_cookies([{"name": "kanal_aid", "value": "vic-phone", "url": world.shop.url}])
    confirm_in(phone, world, token)
    wait_until(lambda: world.db("SELECT count(*) FROM events WHERE event = "
                                "'Sign-up Confirmed'")[0][0] == 2)
    assert wait_until(world.processed)
    assert world.profile("email", "vic@example.com") == vic
    assert world.profile("anonymous_id", anonymous_id(mallory)) != vic
    assert world.db("SELECT count(*) FROM merges WHERE into_profile = ? OR from_profile = ?",
                    vic, vic)[0][0] == 0
    for context in (ada, mallory, phone):
        context.close()


def test_journey_message_once_across_browsers_and_web_push(world: World,
                                                           browser: Any) -> None:
    me = world.me("cy")
    laptop, phone = browser.new_context(), browser.new_context()
    for context in (laptop, phone):
        context.new_page().goto(world.page("/me", scripts=(me,)))
    world.track(userId="cy", event="Profile Updated", context={"traits": {"first_name": "Cy"}})
    wait_until(lambda: world.profile("user_id", "cy"))
    world.track(userId="cy", event="Product Added", properties={"product_id": "MUG-1"})
    assert wait_until(lambda: world.db("SELECT count(*) FROM outbox WHERE channel = 'onsite'"
                                       " AND state = 'queued'")[0][0])
    first = laptop.new_page()
    first.goto(world.page("/", scripts=(me,)))
    note = first.get_by_role("region", name="Cy, your cart misses you")
    note.wait_for()
    second = phone.new_page()
    # Claimed by the laptop: nothing waits any more, so the phone doesn't even ask.
    with second.expect_response(lambda r: "/onsite/site/" in r.url) as site:
        second.goto(world.page("/", scripts=(me,)))
    assert site.value.json()["on"] is False
    assert second.get_by_role("region").count() == 0
    assert world.db("SELECT state FROM outbox WHERE channel = 'onsite'") == [("sent",)]
    # Web push: a click subscribes (PushManager.subscribe is stubbed with a subscription
    # made in Python for the push-service stand-in); Kanal then pushes to it.
    push = world.push  # type: ignore[attr-defined]
    sub = new_browser(f"{push.url}/push/cy")
    world.script("/notify.js", """
        document.addEventListener('click', function (ev) {
          ev.target.id == 'notify' && kanal('push', function (e) {
            document.body.dataset.push = e ? 'error ' + e : 'ok';
          });
        });""")
    context = browser.new_context(permissions=["notifications"])
    context.add_init_script(WATCH + """
        PushManager.prototype.getSubscription = function () { return Promise.resolve(null); };
        PushManager.prototype.subscribe = function (options) {
          window.__subscribed_with = options;
          return Promise.resolve({toJSON: function () { return SUBSCRIPTION; }});
        };""".replace("SUBSCRIPTION", json.dumps(sub.subscription)))
    page = context.new_page()
    page.goto(world.page("/push", "<button id=notify>Notify me</button>",
                         scripts=("/notify.js",)))
    page.get_by_role("button", name="Notify me").click()
    page.wait_for_function("() => document.body.dataset.push")
    assert page.evaluate("() => document.body.dataset.push") == "ok"
    assert page.evaluate("() => window.__subscribed_with.userVisibleOnly") is True
    assert page.evaluate("() => window.__csp") == []
    anon = anonymous_id(context)
    assert wait_until(lambda: world.db("SELECT count(*) FROM identities WHERE kind = "
                                       "'webpush'")[0][0])
    world.track(anonymousId=anon, event="Restocked")
    [(_, headers, body)] = wait_until(lambda: push.received)
    assert json.loads(sub.decrypt(body))["title"] == "Back in stock"
    for c in (laptop, phone, context):
        c.close()
