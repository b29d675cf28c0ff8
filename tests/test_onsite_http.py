"""On-site messages through the collector's routes (in process, real SQLite, fake clock):
the site document, targeting, frequency, who may see what, journey-queued messages,
reported events and the campaigns' experiments report."""

from __future__ import annotations

from typing import Any

import pytest
from kanal_testing import App
from onsite_util import (
    CART,
    DESKTOP,
    MOBILE,
    NEWSLETTER,
    SALE,
    process,
    pull,
    report,
    send,
    user_hash,
)

from kanal_collector.journeys.timers import sync
from kanal_collector.onsite.report import campaign_report
from kanal_collector.store.db import transaction

CAMPAIGNS = {
    "newsletter": """\
        message: newsletter
        layout: modal
        pages: {exclude: ["/checkout*"]}
        hide_if: {event: Sign-up Confirmed}
        frequency: ever
        """,
    "sale": """\
        message: sale
        layout: banner
        position: bottom
        pages: {include: ["/sale*"]}
        devices: [desktop]
        show: {delay: 5s, scroll: 40}
        """,
    "vip": """\
        message: sale
        layout: slot
        slot: home-hero
        segments: [vip]
        frequency: day
        """,
}
SEGMENTS = {"segments": [{"name": "vip", "all": [{"trait": "tier", "eq": "gold"}]}]}


@pytest.fixture
def env(onsite_env: Any) -> Any:
    return onsite_env(messages={"newsletter": NEWSLETTER, "sale": SALE, "cart": CART},
                      campaigns=CAMPAIGNS, segments=SEGMENTS)


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(str(i.get("campaign") or i["id"]) for i in items)


def test_site_document_is_cached_and_says_whether_anything_is_on(onsite_env: Any) -> None:
    quiet = onsite_env(messages={"sale": SALE}, campaigns={})
    r = quiet.client.get(f"/onsite/site/{quiet.keys['public']}.json")
    assert r.status_code == 200
    assert r.get_json() == {"on": False, "push": None}
    assert r.headers["Cache-Control"] == "public, max-age=60"
    assert quiet.client.get("/onsite/site/pk_nope.json").status_code == 404
    busy = onsite_env(messages={"sale": SALE},
                      campaigns={"sale": "message: sale\nlayout: banner\n"},
                      onsite={"site_max_age": 300})
    r = busy.client.get(f"/onsite/site/{busy.keys['public']}.json")
    assert r.get_json()["on"] is True
    assert r.headers["Cache-Control"] == "public, max-age=300"


def test_targeting_by_page_device_segment_and_what_people_did(env: App) -> None:
    # An anonymous visitor on the home page: the newsletter modal only (sale is for
    # /sale pages, vip for a segment).
    assert names(pull(env, "a1")) == ["newsletter"]
    assert names(pull(env, "a1", "https://shop.example/sale/shoes?x=1")) == [
        "newsletter", "sale"]
    sale = next(m for m in pull(env, "a1", "https://shop.example/sale") if
                m.get("campaign") == "sale")
    assert (sale["layout"], sale["position"], sale["delay"], sale["scroll"]) == (
        "banner", "bottom", 5000, 40)
    assert sale["content"] == {"language": "en", "title": "Spring sale",
                               "body": "<p>Everything 20% off</p>", "button": "Shop the sale",
                               "url": "/sale"}
    # Phones don't get the desktop-only banner; the checkout gets nothing.
    assert names(pull(env, "a1", "https://shop.example/sale", ua=MOBILE)) == ["newsletter"]
    assert pull(env, "a1", "https://shop.example/checkout/pay") == []
    # A verified gold customer is in the vip segment: the slot campaign too.
    send(env, {"type": "identify", "userId": "u1", "traits": {"tier": "gold"}}, secret=True)
    hashed = user_hash(env, "u1")
    assert names(pull(env, "b1", user="u1", hashed=hashed)) == ["newsletter", "vip"]
    # … unless they already signed up: hide_if.
    send(env, {"type": "track", "userId": "u1", "event": "Sign-up Confirmed"}, secret=True)
    assert names(pull(env, "b1", user="u1", hashed=hashed)) == ["vip"]
    # Bots get nothing at all.
    assert pull(env, "a1", ua="Googlebot/2.1 (+http://www.google.com/bot.html)") == []


def test_frequency_is_kept_from_the_persons_timeline(env: App) -> None:
    send(env, {"type": "identify", "userId": "u1", "traits": {"tier": "gold"}}, secret=True)
    hashed = user_hash(env, "u1")
    first = {m["campaign"]: m for m in pull(env, "b1", user="u1", hashed=hashed)}
    for name in ("newsletter", "vip"):
        assert report(env, "b1", first[name], "shown").status_code == 200
    process(env)
    # newsletter: once ever; vip: once a day — in another browser of the same person too.
    assert names(pull(env, "b2", user="u1", hashed=hashed)) == []
    env.clock.advance(86_400 + 60)
    assert names(pull(env, "b2", user="u1", hashed=hashed)) == ["vip"]


def test_personal_content_only_for_the_own_profile_or_a_userhash(env: App) -> None:
    send(env, {"type": "identify", "userId": "ada", "traits": {"first_name": "Ada",
                                                                "tier": "gold"}},
         secret=True)
    # Ada's own browser, signed in: her name, her segment.
    hashed = user_hash(env, "ada")
    mine = {m["campaign"]: m for m in pull(env, "ada-laptop", user="ada", hashed=hashed)}
    assert mine["newsletter"]["content"]["title"].startswith("Hi Ada,")
    assert "vip" in mine
    # Someone claims to be Ada with the public key (no hash): the identify links their
    # browser to her profile, yet they see nothing of hers.
    send(env, {"type": "identify", "userId": "ada", "anonymousId": "mallory"})
    theirs = {m["campaign"]: m for m in pull(env, "mallory", user="ada")}
    assert theirs["newsletter"]["content"]["title"].startswith("Hi there,")
    assert "vip" not in theirs
    assert {m["campaign"] for m in pull(env, "mallory", user="ada", hashed="0" * 64)} == {
        "newsletter"}
    # An anonymous visitor's own profile is theirs to see.
    send(env, {"type": "identify", "anonymousId": "bo-phone",
               "traits": {"first_name": "Bo"}})
    [bo] = pull(env, "bo-phone")
    assert bo["content"]["title"].startswith("Hi Bo,")


def test_traits_and_templates_cannot_inject_markup(onsite_env: Any) -> None:
    evil = """\
        onsite:
          title: "{{ traits.first_name }}"
          body: >-
            <p onclick='steal()'>Hi {{ traits.first_name }}</p><script>steal()</script>
            <img src=x onerror=steal()><a href='javascript:steal()'>x</a><style>*{}</style>
        """
    env = onsite_env(messages={"evil": evil},
                     campaigns={"evil": "message: evil\nlayout: modal\n"})
    send(env, {"type": "identify", "anonymousId": "v1",
               "traits": {"first_name": "<img src=x onerror=alert(1)>"}})
    [item] = pull(env, "v1")
    body = item["content"]["body"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in body  # the trait is text
    markup = body.replace("&lt;img src=x onerror=alert(1)&gt;", "TRAIT")
    assert markup == '<p>Hi TRAIT</p> <img src="x"><a rel="noopener noreferrer">x</a>'
    assert item["content"]["title"] == "<img src=x onerror=alert(1)>"  # set as textContent


def nudge(message: str, expires: str | None = None) -> str:
    """A journey that queues `message` on-site for each Product Added."""
    return (f"trigger: {{event: Product Added}}\nentry: {{rule: every_time}}\nsteps:\n"
            f"  - send: {message}\n    channel: onsite\n"
            + (f"    expires: {expires}\n" if expires else ""))


def with_journeys(onsite_env: Any, **kwargs: Any) -> tuple[App, Any]:
    """An app with journey files, loaded as `kanal serve` loads them; and its connection."""
    env = onsite_env(**kwargs)
    conn = env.app.extensions["kanal"].db.conn()
    with transaction(conn):
        sync(conn, env.db_path.parent / "journeys", int(env.clock.now() * 1000))
    return env, conn


def test_a_journey_message_is_shown_once_in_the_first_browser(onsite_env: Any) -> None:
    env, conn = with_journeys(onsite_env, messages={"cart": CART}, campaigns={},
                              journeys={"cart_nudge": nudge("cart", "1d")})
    hashed = user_hash(env, "u7")
    send(env, {"type": "identify", "userId": "u7", "traits": {"first_name": "Cy"}},
         secret=True)
    assert env.client.get(f"/onsite/site/{env.keys['public']}.json").get_json()["on"] is False
    send(env, {"type": "track", "userId": "u7", "event": "Product Added",
               "properties": {"product_id": "MUG-1"}}, secret=True)
    assert env.client.get(f"/onsite/site/{env.keys['public']}.json").get_json()["on"] is True
    # Two browsers of the same (verified) person: the first to ask gets it, once.
    [item] = pull(env, "laptop", user="u7", hashed=hashed)
    assert item["content"]["title"] == "Cy, your cart misses you"
    assert item["content"]["body"] == "<p>Come back to MUG-1.</p>"
    assert item["layout"] == "slide_in" and item["journey"] == "cart_nudge"
    assert pull(env, "phone", user="u7", hashed=hashed) == []
    assert pull(env, "laptop", user="u7", hashed=hashed) == []
    state, recipient = env.rows("SELECT state, recipient FROM outbox WHERE id = ?",
                                item["outbox_id"])[0]
    assert (state, recipient) == ("sent", "onsite")
    assert env.rows("SELECT count(*) FROM events WHERE event = 'On-site Message Delivered'"
                    )[0][0] == 1
    # The journey's funnel counts it like an email: delivered, opened (shown), clicked.
    for action in ("shown", "clicked"):
        assert report(env, "laptop", item, action).status_code == 200
    process(env)
    from kanal_collector.reports.funnels import journey_funnel

    funnel = journey_funnel(conn, "cart_nudge")["totals"]
    assert {k: funnel[k] for k in ("sent", "delivered", "opened", "clicked")} == {
        "sent": 1, "delivered": 1, "opened": 1, "clicked": 1}
    # A second one nobody comes for expires (the worker ends it; nothing is shown).
    send(env, {"type": "track", "userId": "u7", "event": "Product Added",
               "properties": {"product_id": "MUG-2"}}, secret=True)
    env.clock.advance(86_400 + 1)
    from kanal_collector.onsite import ConfirmationWorker

    worker = env.app.extensions["kanal.supervisor"].workers[-1][0]
    assert isinstance(worker, ConfirmationWorker)
    worker.run_once()
    assert pull(env, "phone", user="u7", hashed=hashed) == []
    assert env.rows("SELECT state, reason FROM outbox ORDER BY id")[-1] == ("skipped",
                                                                           "expired")
    # One queued for someone who unsubscribes meanwhile is not handed out (checked again
    # at the pull, as the dispatcher does at send time).
    send(env, {"type": "track", "userId": "u7", "event": "Product Added",
               "properties": {"product_id": "MUG-3"}}, secret=True)
    send(env, {"type": "identify", "userId": "u7", "traits": {"subscriptions":
                                                               {"onsite": False}}},
         secret=True)
    assert pull(env, "phone", user="u7", hashed=hashed) == []
    assert env.rows("SELECT state, reason FROM outbox ORDER BY id")[-1] == ("skipped",
                                                                           "unsubscribed")


def test_events_are_written_by_kanal_from_the_ticket(env: App) -> None:
    [item] = pull(env, "a1")
    assert report(env, "someone-else", item, "shown").status_code == 400  # not theirs
    assert report(env, "a1", item, "held_out").status_code == 400  # not a holdout
    body, mac = item["ticket"].split(".")
    flipped = mac[:5] + ("B" if mac[5] != "B" else "C") + mac[6:]
    bad = dict(item, ticket=f"{body}.{flipped}")
    assert report(env, "a1", bad, "shown").status_code == 400  # forged
    assert report(env, "a1", item, "shown").status_code == 200
    assert report(env, "a1", item, "shown").status_code == 200  # a retry: no second event
    assert report(env, "a1", item, "dismissed").status_code == 200
    process(env)
    rows = env.events()
    shown = [r for r in rows if r["event"] == "On-site Message Shown"]
    assert len(shown) == 1 and shown[0]["key_kind"] == "kanal"
    assert shown[0]["body"]["properties"] == {"campaign": "newsletter", "arm": "main",
                                              "message": "newsletter", "channel": "onsite"}
    assert shown[0]["anonymous_id"] == "a1"
    assert [r["event"] for r in rows].count("On-site Message Dismissed") == 1


def test_experiment_arms_holdout_and_report(onsite_env: Any) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    campaign = """\
        layout: banner
        holdout: 30
        arms:
          - {name: plain, message: sale}
          - {name: bold, weight: 1, message: sale}
        goal: {event: Order Completed, within: 2d}
        frequency: always
        """
    env = onsite_env(messages={"sale": SALE}, campaigns={"promo": campaign}, rate_limit=0.0)
    people = [f"v{i}" for i in range(200)]
    send(env, *({"type": "page", "anonymousId": anon} for anon in people))
    arm_of: dict[str, str] = {}
    for anon in people:
        [item] = pull(env, anon)
        assert pull(env, anon)[0]["arm"] == item["arm"]  # stable for a person
        arm_of[anon] = item["arm"]
        assert ("content" in item) is (item["arm"] != "holdout")
        action = "held_out" if item.get("holdout") else "shown"
        assert report(env, anon, item, action).status_code == 200
    # Who orders: every third person, and more of the "bold" arm.
    buyers = [a for i, a in enumerate(people)
              if i % 3 == 0 or (arm_of[a] == "bold" and i % 3 == 1)]
    send(env, *({"type": "track", "anonymousId": a, "event": "Order Completed",
                 "properties": {"order_id": f"o-{a}", "revenue": 10}} for a in buyers))
    arms = {a: list(arm_of.values()).count(a) for a in set(arm_of.values())}
    assert set(arms) == {"holdout", "plain", "bold"}
    assert 35 <= arms["holdout"] <= 85  # 30 % of 200, give or take
    conn = env.app.extensions["kanal"].db.conn()
    now = int(env.clock.now() * 1000)
    [doc] = campaign_report(conn, {}, since_ms=now - 86_400_000, until_ms=now + 1)
    env.clock.advance(1)
    api = env.client.get("/api/reports/onsite?since=1d", headers={
        "Authorization": f"Bearer {env.keys['admin']}"})
    assert api.status_code == 200
    [served] = api.get_json()["campaigns"]
    assert [r["arm"] for r in served["arms"]] == ["holdout", "plain", "bold"]  # file order
    assert {r["arm"]: r for r in served["arms"]} == {r["arm"]: r for r in doc["arms"]}
    assert env.client.get("/api/reports/onsite").status_code == 401
    assert doc["control"] == "holdout"
    rows = {r["arm"]: r for r in doc["arms"]}
    for arm, n in arms.items():
        assert rows[arm]["people"] == n
        assert rows[arm]["conversions"] == sum(arm_of[b] == arm for b in buyers)
        assert rows[arm]["shown"] == (0 if arm == "holdout" else n)
    # The p-value against scipy's chi-squared test of the same 2×2 table (no Yates).
    control = rows["holdout"]
    for arm in ("plain", "bold"):
        row = rows[arm]
        table = [[control["conversions"], control["people"] - control["conversions"]],
                 [row["conversions"], row["people"] - row["conversions"]]]
        _, p, _, _ = scipy_stats.chi2_contingency(table, correction=False)
        assert row["p_value"] == pytest.approx(p, abs=1e-9)
    assert rows["bold"]["rate"] > rows["plain"]["rate"]


def test_desktop_and_mobile_are_told_apart() -> None:
    from kanal_collector.ingest.enrich import describe_user_agent

    assert describe_user_agent(DESKTOP)["device"] == "desktop"
    assert describe_user_agent(MOBILE)["device"] == "mobile"


def test_products_in_on_site_content(onsite_env: Any) -> None:
    shelf = """\
        onsite:
          title: Back in stock
          body: "{% set p = product('MUG-1') %}{{ product_block(p) }}"
        """
    env = onsite_env(messages={"shelf": shelf}, campaigns={
        "shelf": "message: shelf\nlayout: slot\nslot: shelf\n"})
    put = env.client.put("/api/products/MUG-1", headers={
        "Authorization": f"Bearer {env.keys['admin']}"}, json={
        "title": "Blue <mug>", "price": "12.00 EUR", "link": "https://shop.example/mug",
        "image_link": "https://shop.example/mug.jpg"})
    assert put.status_code == 200, put.get_json()
    [item] = pull(env, "v1")
    body = item["content"]["body"]
    assert '<a href="https://shop.example/mug" rel="noopener noreferrer">Blue &lt;mug&gt;</a>' \
        in body
    assert '<img src="https://shop.example/mug.jpg" alt="Blue &lt;mug&gt;" width="120">' in body
    assert "12.00 EUR" in body and "style=" not in body


def test_on_site_clicks_are_touchpoints() -> None:
    from kanal_collector.reports.touchpoints import classify

    body = {"properties": {"campaign": "spring", "message": "sale", "channel": "onsite",
                           "journey": "cart"}}
    assert classify("track", "On-site Message Clicked", "kanal", body) == (
        "onsite", "sale", "cart")
    assert classify("track", "On-site Message Clicked", "public", body) is None  # forged


def test_frequency_caps_hold_a_journey_message_but_quiet_hours_do_not(onsite_env: Any) -> None:
    env, conn = with_journeys(
        onsite_env, messages={"cart": CART}, campaigns={},
        journeys={"cart_nudge": nudge("cart", "3d")},
        sections={"frequency": {"per_day": 1}, "quiet_hours": {"from": "00:00", "to": "23:59"}})
    hashed = user_hash(env, "u8")

    def added(product: str) -> None:
        send(env, {"type": "track", "userId": "u8", "event": "Product Added",
                   "properties": {"product_id": product}}, secret=True)

    added("MUG-1")
    # Global quiet hours keep notifications from waking people; a page view is not that.
    [first] = pull(env, "laptop", user="u8", hashed=hashed)
    assert first["content"]["body"] == "<p>Come back to MUG-1.</p>"
    added("MUG-2")
    assert pull(env, "laptop", user="u8", hashed=hashed) == []  # the day's one is used
    state, reason, due = env.rows("SELECT state, reason, next_attempt_at FROM outbox "
                                  "ORDER BY id")[-1]
    assert (state, reason) == ("queued", "deferred: frequency cap: 1 per day")
    now_ms = int(env.clock.now() * 1000)
    assert due == now_ms - now_ms % 86_400_000 + 86_400_000  # the next (UTC) day
    [(what, detail)] = env.rows("SELECT what, detail FROM outbox_log")
    assert what == "deferred" and "frequency cap" in detail
    assert env.client.get(f"/onsite/site/{env.keys['public']}.json").get_json()["on"] is False
    # A waiting on-site row may never be shown: it doesn't take an email's budget.
    from kanal_collector.store import outbox as outbox_store

    pid = env.rows("SELECT profile_id FROM outbox ORDER BY id")[-1][0]
    assert outbox_store.queued_ahead(conn, [pid], above=-1000, due_before=due + 1) == []
    env.clock.advance(86_400)
    [second] = pull(env, "phone", user="u8", hashed=hashed)
    assert second["content"]["body"] == "<p>Come back to MUG-2.</p>"


def test_untrusted_data_cannot_aim_an_on_site_link(onsite_env: Any) -> None:
    link = """\
        onsite:
          title: Back to your cart
          body: "<p><a href='{{ data.event.url }}'>Your cart</a></p>"
          button: Open it
          url: "{{ data.event.url }}"
        """
    promo = """\
        onsite:
          title: Our partner
          body: "<p><a href='{{ traits.site | default('/partner') }}'>Visit</a></p>"
        """
    env, _ = with_journeys(onsite_env, messages={"link": link, "promo": promo},
                           campaigns={"promo": "message: promo\nlayout: banner\n"},
                           journeys={"nudge": nudge("link")})
    hashed = user_hash(env, "u9")
    send(env, {"type": "identify", "userId": "u9", "traits": {"first_name": "Di"}},
         secret=True)
    added = {"type": "track", "userId": "u9", "event": "Product Added",
             "properties": {"url": "https://evil.example/cart"}}
    # Anyone with the public key (it is in every page) may start the journey, but not
    # choose where its message links to: the row fails, naming the host.
    send(env, added)
    assert names(pull(env, "laptop", user="u9", hashed=hashed)) == ["promo"]
    state, reason = env.rows("SELECT state, reason FROM outbox ORDER BY id")[-1]
    assert state == "failed" and "evil.example" in reason
    # The shop's backend (a secret key) may.
    send(env, {**added, "messageId": "from-the-backend"}, secret=True)
    shown = {i.get("campaign") or i["journey"]: i for i in
             pull(env, "laptop", user="u9", hashed=hashed)}
    promo_item, item = shown["promo"], shown["nudge"]
    assert item["content"]["url"] == "https://evil.example/cart"
    assert "https://evil.example/cart" in item["content"]["body"]
    assert "/partner" in promo_item["content"]["body"]
    # A trait written through the public key can't aim a campaign's link either.
    send(env, {"type": "identify", "anonymousId": "b2",
               "traits": {"site": "https://evil.example/"}})
    assert pull(env, "b2") == []
