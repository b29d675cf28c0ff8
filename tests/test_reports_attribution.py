"""Multi-touch attribution: hand-computed examples for every model and rule, and the
report against a deliberately naive implementation on a randomized log.

Profiles are built by the real processor (tests/profiles_util.Log) from real events;
Kanal's own message events come from the shared builder (own_events.own_event).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from profiles_util import T0, Log

from kanal_collector.config import Config
from kanal_collector.errors import ConfigError
from kanal_collector.own_events import own_event
from kanal_collector.reports.attribution import (
    MODELS,
    AttributionSettings,
    attribute,
    attribution_report,
)
from kanal_collector.reports.touchpoints import classify, referrer_channel, url_host
from kanal_collector.store.db import transaction
from kanal_collector.store.events import append_events

DAY = 86_400_000
HOUR = 3_600_000
C = T0 + 40 * DAY  # when the hand-computed conversions happen
SINCE, UNTIL = T0, T0 + 100 * DAY
SHOP = "https://shop.example.com"
_seq = itertools.count(1)


# -- building events as the collector stores them -------------------------------------------


def customer(log: Log, user: str) -> None:
    """A backend identify, so the person has a profile before anything else arrives."""
    log.add("identify", user_id=user, trusted=True, ts=T0, traits={"plan": "x"})


def utm_visit(log: Log, ts: int, *, user: str | None = None, anon: str | None = None,
              medium: str | None = "email", name: str | None = "spring_sale",
              source: str | None = "newsletter", kind: str = "page",
              event: str | None = None) -> None:
    """A landing on a UTM link: ingest copied the UTM into context.campaign."""
    campaign = {k: v for k, v in (("source", source), ("medium", medium), ("name", name)) if v}
    log.add(kind, event=event, user_id=user, anon=anon, ts=ts,
            context={"page": {"url": f"{SHOP}/shoes?utm_source={source}", "referrer": ""},
                     "campaign": campaign})


def referred_visit(log: Log, ts: int, referrer: str, *, user: str | None = None,
                   anon: str | None = None, url: str = f"{SHOP}/", kind: str = "page") -> None:
    """A page view whose referrer is `referrer`, with no UTM."""
    log.add(kind, user_id=user, anon=anon, ts=ts,
            context={"page": {"url": url, "referrer": referrer, "path": "/"}})


def kanal_event(log: Log, name: str, ts: int, *, user: str, origin: str = "email",
                **properties: Any) -> None:
    """One of Kanal's own events (delivery, open, click) on the user's timeline."""
    row = own_event(name=name, message_id=f"kanal-{next(_seq)}", origin=origin,
                    properties=properties, user_id=user, anonymous_id=None,
                    source_id=log.source, now_ms=ts)
    with transaction(log.conn):
        append_events(log.conn, [row])


def order(log: Log, ts: int, *, user: str | None = None, anon: str | None = None,
          revenue: float | None = 100.0, event: str = "Order Completed",
          **properties: Any) -> None:
    """A conversion; `revenue` None leaves the order without a value."""
    props = dict(properties)
    if revenue is not None:
        props["revenue"] = revenue
    log.add("track", event=event, user_id=user, anon=anon, trusted=user is not None,
            ts=ts, properties=props, origin="server" if user else "web")


def report(log: Log, **kwargs: Any) -> dict[str, Any]:
    log.process()
    kwargs.setdefault("since_ms", SINCE)
    kwargs.setdefault("until_ms", UNTIL)
    return attribution_report(log.conn, **kwargs)


def table(rep: dict[str, Any], model: str, dimension: str) -> dict[str, tuple[float, float]]:
    """{key: (conversions, revenue)} of one model and dimension."""
    return {r["key"]: (r["conversions"], r["revenue"]) for r in rep["models"][model][dimension]}


# -- the three-touch example, every model -----------------------------------------------------


def three_touches(log: Log) -> None:
    """t1 = UTM email visit at C−10d, t2 = Google visit at C−3d, t3 = an open of the
    journey email "welcome" at C−1d; an order of 100 at C."""
    customer(log, "u1")
    utm_visit(log, C - 10 * DAY, user="u1", medium="Email")  # channel keys are lower-case
    referred_visit(log, C - 3 * DAY, "https://www.google.co.uk/search?q=shoes", user="u1")
    kanal_event(log, "Email Opened", C - 1 * DAY, user="u1", outbox_id=1, message="welcome",
                journey="onboarding", channel="email")
    log.add("page", user_id="u1", ts=C - 2 * HOUR,  # a direct visit: no touchpoint
            context={"page": {"url": f"{SHOP}/", "referrer": ""}})
    order(log, C, user="u1", revenue=100.0)


def test_first_and_last_touch(log: Log) -> None:
    three_touches(log)
    rep = report(log)
    assert rep["conversions"] == 1 and rep["revenue"] == 100.0
    assert rep["touchpoints"] == 3
    assert rep["unattributed"] == {"conversions": 0, "revenue": 0.0}
    # first touch: all to t1 (email / spring_sale / no journey)
    assert table(rep, "first_touch", "channel") == {"email": (1.0, 100.0)}
    assert table(rep, "first_touch", "campaign") == {"spring_sale": (1.0, 100.0)}
    assert table(rep, "first_touch", "journey") == {"(none)": (1.0, 100.0)}
    # last touch: all to t3 (email / welcome / onboarding)
    assert table(rep, "last_touch", "channel") == {"email": (1.0, 100.0)}
    assert table(rep, "last_touch", "campaign") == {"welcome": (1.0, 100.0)}
    assert table(rep, "last_touch", "journey") == {"onboarding": (1.0, 100.0)}


def test_linear(log: Log) -> None:
    three_touches(log)
    rep = report(log)
    # 1/3 each: email = t1 + t3 = 2/3 → 0.6667 and 66.67; search = t2 = 1/3
    assert table(rep, "linear", "channel") == {"email": (0.6667, 66.67),
                                               "search": (0.3333, 33.33)}
    assert table(rep, "linear", "campaign") == {
        "spring_sale": (0.3333, 33.33), "(none)": (0.3333, 33.33),
        "welcome": (0.3333, 33.33)}
    # journey: t1 and t2 have none (2/3), t3 is onboarding (1/3)
    assert table(rep, "linear", "journey") == {"(none)": (0.6667, 66.67),
                                               "onboarding": (0.3333, 33.33)}


def test_time_decay_with_a_seven_day_half_life(log: Log) -> None:
    three_touches(log)
    rep = report(log)
    # weights 2^(−Δt/7d): t1 2^(−10/7) = a/2, t2 2^(−3/7) = a, t3 2^(−1/7) = b, with
    # a = 0.742997, b = 0.905724; S = 1.5a + b = 2.020219.
    # t1 = 0.371499/S = 0.183890, t2 = 0.742997/S = 0.367780, t3 = 0.905724/S = 0.448329
    # channel email = t1 + t3 = 0.632220 (63.22), search = t2 (36.78)
    assert table(rep, "time_decay", "channel") == {"email": (0.6322, 63.22),
                                                   "search": (0.3678, 36.78)}
    assert table(rep, "time_decay", "campaign") == {
        "welcome": (0.4483, 44.83), "(none)": (0.3678, 36.78),
        "spring_sale": (0.1839, 18.39)}
    # journey: (none) = t1 + t2 = 0.551670, onboarding = t3
    assert table(rep, "time_decay", "journey") == {"(none)": (0.5517, 55.17),
                                                   "onboarding": (0.4483, 44.83)}


def test_position_based_with_three_touches(log: Log) -> None:
    three_touches(log)
    rep = report(log)
    # 40% t1, 20% t2 (the only middle touch), 40% t3
    assert table(rep, "position_based", "channel") == {"email": (0.8, 80.0),
                                                       "search": (0.2, 20.0)}
    assert table(rep, "position_based", "campaign") == {
        "spring_sale": (0.4, 40.0), "welcome": (0.4, 40.0), "(none)": (0.2, 20.0)}


def test_rows_sorted_by_revenue_then_key(log: Log) -> None:
    three_touches(log)
    rep = report(log)
    keys = [r["key"] for r in rep["models"]["linear"]["campaign"]]
    assert keys == ["(none)", "spring_sale", "welcome"]  # equal revenue: by key
    keys = [r["key"] for r in rep["models"]["time_decay"]["campaign"]]
    assert keys == ["welcome", "(none)", "spring_sale"]


def test_report_shape(log: Log) -> None:
    three_touches(log)
    rep = report(log, models=["linear"])
    assert rep["since"] == SINCE and rep["until"] == UNTIL
    assert rep["goal_events"] == ["Order Completed"]
    assert rep["lookback_ms"] == 30 * DAY and rep["half_life_ms"] == 7 * DAY
    assert list(rep["models"]) == ["linear"]
    assert list(rep["models"]["linear"]) == ["channel", "campaign", "journey"]
    assert rep["models"]["linear"]["channel"][0] == {
        "key": "email", "conversions": 0.6667, "revenue": 66.67, "cost": None, "roas": None}


# -- position-based n = 1, 2, 4 and time decay with another half-life ------------------------


def test_position_based_one_and_two_touches(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - 5 * DAY, user="u1", medium="cpc", name="brand")
    order(log, C, user="u1", revenue=60.0)  # n = 1: 100% to brand
    customer(log, "u2")
    utm_visit(log, C - 5 * DAY, user="u2", medium="cpc", name="brand")
    referred_visit(log, C - 1 * DAY, "https://l.facebook.com/", user="u2")
    order(log, C, user="u2", revenue=40.0)  # n = 2: 50/50 brand and (none)
    rep = report(log)
    # brand: 1 + 0.5 = 1.5 conversions, 60 + 20 = 80; (none): 0.5, 20
    assert table(rep, "position_based", "campaign") == {"brand": (1.5, 80.0),
                                                        "(none)": (0.5, 20.0)}
    assert table(rep, "position_based", "channel") == {"cpc": (1.5, 80.0),
                                                       "social": (0.5, 20.0)}


def test_position_based_four_touches(log: Log) -> None:
    customer(log, "u1")
    for i, name in enumerate(["a", "b", "c", "d"]):
        utm_visit(log, C - (4 - i) * DAY, user="u1", medium="cpc", name=name)
    order(log, C, user="u1", revenue=200.0)
    rep = report(log)
    # 40% a, 20% / 2 = 10% each to b and c, 40% d
    assert table(rep, "position_based", "campaign") == {
        "a": (0.4, 80.0), "d": (0.4, 80.0), "b": (0.1, 20.0), "c": (0.1, 20.0)}
    # linear: 25% each
    assert table(rep, "linear", "campaign") == {k: (0.25, 50.0) for k in "abcd"}


def test_time_decay_half_life_setting(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - 2 * DAY, user="u1", medium="cpc", name="early")
    utm_visit(log, C - 1 * DAY, user="u1", medium="cpc", name="late")
    order(log, C, user="u1", revenue=90.0)
    log.process()
    one_day = AttributionSettings(half_life_ms=DAY)
    rep = attribution_report(log.conn, since_ms=SINCE, until_ms=UNTIL, settings=one_day)
    # half-life 1d: weights 2^−2 = 0.25 and 2^−1 = 0.5 → 1/3 and 2/3 (30 and 60)
    assert table(rep, "time_decay", "campaign") == {"late": (0.6667, 60.0),
                                                    "early": (0.3333, 30.0)}
    rep = attribution_report(log.conn, since_ms=SINCE, until_ms=UNTIL,
                             settings=AttributionSettings(half_life_ms=2 * DAY))
    # half-life 2d: 2^−1 = 0.5 and 2^−0.5 = 0.707107 → 0.414214 and 0.585786
    assert table(rep, "time_decay", "campaign") == {"late": (0.5858, 52.72),
                                                    "early": (0.4142, 37.28)}


# -- which events are touchpoints ---------------------------------------------------------


def test_lookback_excludes_older_touches_and_keeps_the_boundary(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - 30 * DAY - 1, user="u1", medium="cpc", name="too_old")
    utm_visit(log, C - 30 * DAY, user="u1", medium="cpc", name="boundary")
    order(log, C, user="u1")
    rep = report(log)
    assert table(rep, "first_touch", "campaign") == {"boundary": (1.0, 100.0)}
    assert rep["touchpoints"] == 1
    # a 40-day lookback reaches the older one
    rep = report(log, settings=AttributionSettings(lookback_ms=40 * DAY))
    assert table(rep, "first_touch", "campaign") == {"too_old": (1.0, 100.0)}


def test_touches_after_the_conversion_do_not_count(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - DAY, user="u1", medium="cpc", name="before")
    order(log, C, user="u1")
    utm_visit(log, C + 1, user="u1", medium="cpc", name="after")
    rep = report(log)
    assert table(rep, "linear", "campaign") == {"before": (1.0, 100.0)}


def test_each_conversion_gets_its_own_touches(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - 2 * DAY, user="u1", medium="cpc", name="a")
    order(log, C, user="u1", revenue=10.0)
    utm_visit(log, C + DAY, user="u1", medium="cpc", name="b")
    order(log, C + 2 * DAY, user="u1", revenue=30.0)
    rep = report(log)
    # first order: a only; second: a, b (a is still within 30 days)
    assert table(rep, "first_touch", "campaign") == {"a": (2.0, 40.0)}
    assert table(rep, "last_touch", "campaign") == {"b": (1.0, 30.0), "a": (1.0, 10.0)}
    assert table(rep, "linear", "campaign") == {"a": (1.5, 25.0), "b": (0.5, 15.0)}
    assert rep["touchpoints"] == 2


def test_conversion_event_with_utm_is_its_own_touch(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C, user="u1", kind="track", event="Order Completed", medium="cpc",
              name="checkout_link")
    rep = report(log)
    assert rep["conversions"] == 1 and rep["revenue"] == 0.0  # no value in the order
    assert table(rep, "last_touch", "campaign") == {"checkout_link": (1.0, 0.0)}


def test_unattributed_conversions(log: Log) -> None:
    customer(log, "u1")
    log.add("page", user_id="u1", ts=C - DAY,  # direct
            context={"page": {"url": f"{SHOP}/", "referrer": ""}})
    referred_visit(log, C - DAY, f"{SHOP}/cart", user="u1")  # internal
    referred_visit(log, C - DAY, "https://shop.example.com/a", user="u1",
                   url="https://www.shop.example.com/b")  # internal, www. is the same site
    log.add("track", event="Product Viewed", user_id="u1", ts=C - DAY,  # a track, not a visit
            context={"page": {"url": f"{SHOP}/", "referrer": "https://google.com/"}})
    order(log, C, user="u1", revenue=55.5)
    customer(log, "u2")
    utm_visit(log, C - DAY, user="u2", medium="cpc", name="brand")
    order(log, C, user="u2", revenue=10.0)
    rep = report(log)
    assert rep["conversions"] == 2 and rep["revenue"] == 65.5
    assert rep["unattributed"] == {"conversions": 1, "revenue": 55.5}
    for model in MODELS:  # the unattributed order credits no key
        assert table(rep, model, "campaign") == {"brand": (1.0, 10.0)}


def test_bots_never_count(log: Log) -> None:
    customer(log, "u1")
    kanal_event(log, "Email Link Clicked", C - DAY, user="u1", message="promo", channel="email",
                bot=True, bot_reason="too fast")
    kanal_event(log, "Email Delivered", C - 2 * DAY, user="u1", message="promo",
                channel="email")
    order(log, C, user="u1", revenue=20.0)
    order(log, C + 1, user="u1", revenue=999.0, bot=True)
    rep = report(log)
    assert rep["conversions"] == 1 and rep["revenue"] == 20.0
    assert rep["touchpoints"] == 1  # the delivery, not the bot's click
    assert table(rep, "linear", "campaign") == {"promo": (1.0, 20.0)}


def test_kanal_message_events(log: Log) -> None:
    customer(log, "u1")
    kanal_event(log, "SMS Sent", C - 3 * DAY, user="u1", origin="sms", message="win_back_sms",
                journey="win_back", outbox_id=7)  # no channel: the event's kind, sms
    kanal_event(log, "Email Bounced", C - 2 * DAY, user="u1", message="x",
                channel="email")  # a failure is no touch
    kanal_event(log, "Push Notification Sent", C - DAY, user="u1", origin="push",
                message="price_drop", channel="Push")
    log.add("track", event="Email Opened", user_id="u1", ts=C - DAY,  # not Kanal's own
            properties={"message": "forged", "channel": "email"})
    order(log, C, user="u1", revenue=10.0)
    rep = report(log)
    assert table(rep, "linear", "channel") == {"push": (0.5, 5.0), "sms": (0.5, 5.0)}
    assert table(rep, "linear", "journey") == {"(none)": (0.5, 5.0), "win_back": (0.5, 5.0)}
    assert rep["touchpoints"] == 2


def test_referrer_channels(log: Log) -> None:
    for i, referrer in enumerate(["https://www.google.de/search", "https://duckduckgo.com/",
                                  "https://t.co/xyz", "https://www.reddit.com/r/shoes",
                                  "https://blog.example.org/post", "not a url"]):
        customer(log, f"u{i}")
        referred_visit(log, C - DAY, referrer, user=f"u{i}")
        order(log, C, user=f"u{i}", revenue=10.0)
    rep = report(log)
    assert table(rep, "first_touch", "channel") == {
        "search": (2.0, 20.0), "social": (2.0, 20.0), "referral": (1.0, 10.0)}
    assert rep["unattributed"]["conversions"] == 1  # "not a url" has no host


def test_ignore_referrers(log: Log) -> None:
    customer(log, "u1")
    referred_visit(log, C - DAY, "https://www.paypal.com/checkout", user="u1")
    order(log, C, user="u1")
    settings = AttributionSettings(ignore_referrers=("https://PayPal.com",))
    assert settings.ignore_referrers == ("paypal.com",)
    assert report(log, settings=settings)["unattributed"]["conversions"] == 1
    assert report(log)["unattributed"]["conversions"] == 0


def test_campaign_without_medium_or_name(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - 2 * DAY, user="u1", medium=None, name=None, source="partner")
    utm_visit(log, C - DAY, user="u1", medium="Affiliate", name=None, source=None)
    order(log, C, user="u1", revenue=10.0)
    rep = report(log)
    # no medium → channel "campaign"; no name → the source; neither → "(none)"
    assert table(rep, "first_touch", "channel") == {"campaign": (1.0, 10.0)}
    assert table(rep, "first_touch", "campaign") == {"partner": (1.0, 10.0)}
    assert table(rep, "last_touch", "channel") == {"affiliate": (1.0, 10.0)}
    assert table(rep, "last_touch", "campaign") == {"(none)": (1.0, 10.0)}


def test_merged_profile_keeps_its_anonymous_touches(log: Log) -> None:
    customer(log, "u1")
    # An anonymous visitor lands from a campaign: a profile of its own …
    utm_visit(log, C - 5 * DAY, anon="a1", medium="cpc", name="brand")
    log.process()
    assert log.pid("a1") != log.pid("u1")
    # … later signs in on the site (the profile is merged into the customer's) and the
    # backend records the order under the userId only.
    log.add("identify", user_id="u1", anon="a1", ts=C - DAY)
    order(log, C, user="u1", revenue=70.0)
    log.process()
    assert log.pid("a1") == log.pid("u1")
    rep = report(log)
    assert table(rep, "first_touch", "campaign") == {"brand": (1.0, 70.0)}
    assert rep["unattributed"]["conversions"] == 0


def test_goal_events_are_configurable(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - DAY, user="u1", medium="cpc", name="brand")
    order(log, C, user="u1", event="Signed Up", revenue=None)
    order(log, C + 1, user="u1", revenue=30.0)
    rep = report(log)
    assert rep["conversions"] == 1 and rep["revenue"] == 30.0
    settings = AttributionSettings(goal_events=("Signed Up", "Order Completed"))
    rep = report(log, settings=settings)
    assert rep["goal_events"] == ["Signed Up", "Order Completed"]
    assert rep["conversions"] == 2 and rep["revenue"] == 30.0
    assert table(rep, "linear", "campaign") == {"brand": (2.0, 30.0)}


def test_window_bounds_conversions(log: Log) -> None:
    customer(log, "u1")
    utm_visit(log, C - DAY, user="u1", medium="cpc", name="brand")
    order(log, C, user="u1", revenue=10.0)
    order(log, C + DAY, user="u1", revenue=20.0)
    rep = report(log, since_ms=C, until_ms=C + DAY)  # [since, until): the first only
    assert (rep["conversions"], rep["revenue"]) == (1, 10.0)
    # the touch before `since` still counts (within the lookback)
    assert table(rep, "linear", "campaign") == {"brand": (1.0, 10.0)}


def test_revenue_from_total_or_products(log: Log) -> None:
    customer(log, "u1")
    order(log, C, user="u1", revenue=None, total="12.5")
    order(log, C + 1, user="u1", revenue=None,
          products=[{"price": 10, "quantity": 2}, {"price": 5}])
    rep = report(log)
    assert rep["revenue"] == 37.5 and rep["unattributed"]["revenue"] == 37.5


# -- costs and ROAS ------------------------------------------------------------------------


def test_costs_and_roas(log: Log) -> None:
    three_touches(log)
    costs = {("channel", "EMAIL"): 40.0, ("campaign", "spring_sale"): 0.0,
             ("journey", "win_back"): 10.0, ("journey", "onboarding"): 20.0}
    rep = report(log, costs=costs)
    rows = {r["key"]: r for r in rep["models"]["linear"]["channel"]}
    # email earned 66.67 for a cost of 40: ROAS 66.6667/40 = 1.6667
    assert rows["email"] == {"key": "email", "conversions": 0.6667, "revenue": 66.67,
                             "cost": 40.0, "roas": 1.6667}
    assert rows["search"]["cost"] is None and rows["search"]["roas"] is None
    campaign = {r["key"]: r for r in rep["models"]["linear"]["campaign"]}
    assert campaign["spring_sale"]["cost"] == 0.0 and campaign["spring_sale"]["roas"] is None
    journeys = rep["models"]["last_touch"]["journey"]
    # onboarding: 100 / 20 = 5; win_back spent 10 and earned nothing: listed, ROAS 0
    assert journeys == [
        {"key": "onboarding", "conversions": 1.0, "revenue": 100.0, "cost": 20.0, "roas": 5.0},
        {"key": "win_back", "conversions": 0.0, "revenue": 0.0, "cost": 10.0, "roas": 0.0}]
    with pytest.raises(ValueError, match="unknown dimension 'source'"):
        report(log, costs={("source", "x"): 1.0})


# -- settings and arguments --------------------------------------------------------------


def test_settings_from_config() -> None:
    config = Config(sections={"attribution": {
        "goal_events": ["Order Completed", "Subscription Started"], "lookback": "14d",
        "half_life": "36h", "ignore_referrers": ["www.paypal.com"]}})
    settings = AttributionSettings.from_config(config)
    assert settings == AttributionSettings(
        goal_events=("Order Completed", "Subscription Started"), lookback_ms=14 * DAY,
        half_life_ms=36 * HOUR, ignore_referrers=("paypal.com",))
    assert AttributionSettings.from_config(Config()) == AttributionSettings()


@pytest.mark.parametrize(("table_", "message"), [
    ({"lookback": "30 days"}, "attribution.lookback"),
    ({"lookback": 30}, "attribution.lookback"),
    ({"half_life": "0d"}, "attribution.half_life"),
    ({"goal_events": []}, "goal_events must be a non-empty list"),
    ({"goal_events": ["ok", ""]}, "attribution.goal_events"),
    ({"goal_events": 5}, "attribution.goal_events"),
    ({"lookback_days": 3}, "attribution.lookback_days is not a setting"),
])
def test_settings_errors(table_: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AttributionSettings.from_config(Config(sections={"attribution": table_}))


def test_argument_errors(log: Log) -> None:
    with pytest.raises(ValueError, match="unknown model 'last_click'"):
        report(log, models=["linear", "last_click"])
    with pytest.raises(ValueError, match="before until_ms"):
        report(log, since_ms=UNTIL, until_ms=UNTIL)
    with pytest.raises(ValueError, match="lookback_ms"):
        AttributionSettings(lookback_ms=0)


def test_touchpoint_helpers() -> None:
    assert url_host("https://WWW.Example.com:8080/x?y") == "example.com"
    assert url_host("http://[::1") == ""
    assert referrer_channel("news.google.com") == "search"
    assert referrer_channel("m.facebook.com") == "social"
    assert referrer_channel("x.com") == "social"
    assert referrer_channel("x.example.com") == "referral"
    assert referrer_channel("googlefans.org") == "referral"
    body = {"context": {"campaign": {"medium": " CPC ", "name": "b"}},
            "properties": {"bot": True}}
    assert classify("page", None, "public", body) is None
    del body["properties"]
    assert classify("track", "Product Viewed", "public", body) == ("cpc", "b", "(none)")
    assert classify("page", None, "public", {"context": {"campaign": {}}}) is None
    deep_link = {"context": {"referrer": {"type": "app", "url": "https://www.pinterest.com/p"}}}
    assert classify("screen", None, "public", deep_link) == ("social", "(none)", "(none)")
    assert classify("track", "Opened", "public", deep_link) is None
    server_page = {"properties": {"referrer": "https://bing.com/", "url": f"{SHOP}/"}}
    assert classify("page", None, "secret", server_page) == ("search", "(none)", "(none)")


# -- against a naive implementation, on a randomized log ----------------------------------

CAMPAIGNS = [  # (context.campaign, the touch it is)
    ({"source": "newsletter", "medium": "email", "name": "spring_sale"},
     ("email", "spring_sale", "(none)")),
    ({"source": "google", "medium": "CPC", "name": "brand"}, ("cpc", "brand", "(none)")),
    ({"source": "partner"}, ("campaign", "partner", "(none)")),
    ({"medium": "social", "content": "a"}, ("social", "(none)", "(none)")),
]
REFERRERS = [  # (referrer, the touch it is; None: no touch)
    ("https://www.google.com/search", ("search", "(none)", "(none)")),
    ("https://www.bing.com/", ("search", "(none)", "(none)")),
    ("https://t.co/x", ("social", "(none)", "(none)")),
    ("https://www.instagram.com/", ("social", "(none)", "(none)")),
    ("https://blog.example.org/", ("referral", "(none)", "(none)")),
    ("https://shop.example.com/cart", None),
    ("", None),
]
MESSAGES = [  # (event, properties, the touch it is)
    ("Email Delivered", {"message": "welcome", "journey": "onboarding", "channel": "email"},
     ("email", "welcome", "onboarding")),
    ("Email Opened", {"message": "welcome", "journey": "onboarding", "channel": "email"},
     ("email", "welcome", "onboarding")),
    ("Email Link Clicked", {"message": "cart", "journey": "abandoned", "channel": "email"},
     ("email", "cart", "abandoned")),
    ("Email Link Clicked", {"message": "cart", "journey": "abandoned", "channel": "email",
                            "bot": True}, None),
    ("SMS Sent", {"message": "sms1", "journey": "win_back"}, ("sms", "sms1", "win_back")),
    ("SMS Delivered", {"message": "sms1", "journey": "win_back", "channel": "sms"},
     ("sms", "sms1", "win_back")),
    ("Push Notification Sent", {"message": "drop", "channel": "push"},
     ("push", "drop", "(none)")),
    ("Email Bounced", {"message": "welcome", "channel": "email"}, None),
]
ORDERS = [  # (properties, revenue, counts)
    ({"revenue": 10.0}, 10.0, True), ({"total": "25.5"}, 25.5, True),
    ({"products": [{"price": 3.0, "quantity": 2}, {"price": 4}]}, 10.0, True),
    ({}, 0.0, True), ({"revenue": 500.0, "bot": True}, 500.0, False),
]


def random_log(log: Log, rnd: random.Random, people: int) -> list[dict[str, Any]]:
    """Append a random log; return what each event is, as the generator meant it."""
    planned: list[dict[str, Any]] = []
    firsts = []
    for p in range(people):
        user, anon = f"u{p}", f"a{p}"
        firsts.append(dict(person=p, kind="identify", user=user, ts=T0, touch=None))
        planned.append(dict(person=p, kind="identify", user=user, anon=anon, trusted=False,
                            ts=T0 + rnd.randrange(90 * 24) * HOUR, touch=None))
        for _ in range(rnd.randrange(20, 80)):
            ts = T0 + rnd.randrange(90 * 24) * HOUR  # whole hours: many ties
            roll = rnd.random()
            web = {"anon": anon} if rnd.random() < 0.6 else {"user": user}
            if roll < 0.25:
                context, touch = rnd.choice(CAMPAIGNS)
                kind = rnd.choice(["page", "page", "track", "screen"])
                planned.append(dict(person=p, kind=kind, ts=ts, touch=touch, **web,
                                    context={"campaign": context,
                                             "page": {"url": f"{SHOP}/?utm=1",
                                                      "referrer": "https://google.com/"}}))
            elif roll < 0.5:
                referrer, touch = rnd.choice(REFERRERS)
                kind = rnd.choice(["page", "page", "page", "track"])
                planned.append(dict(person=p, kind=kind, ts=ts,
                                    touch=touch if kind == "page" else None, **web,
                                    context={"page": {"url": f"{SHOP}/", "referrer": referrer}}))
            elif roll < 0.75:
                name, props, touch = rnd.choice(MESSAGES)
                planned.append(dict(person=p, kind="kanal", name=name, ts=ts, user=user,
                                    properties=props, touch=touch))
            elif roll < 0.9:
                props, revenue, counts = rnd.choice(ORDERS)
                goal = rnd.choice(["Order Completed", "Order Completed", "Signed Up"])
                item = dict(person=p, kind="goal", name=goal, ts=ts, user=user,
                            properties=props, revenue=revenue, counts=counts, touch=None)
                if rnd.random() < 0.2:  # an order on a UTM landing: its own touch too
                    context, touch = rnd.choice(CAMPAIGNS)
                    item.update(context={"campaign": context}, touch=touch if counts else None)
                planned.append(item)
            else:
                planned.append(dict(person=p, kind="track", ts=ts, touch=None, **web,
                                    context={"page": {"url": f"{SHOP}/p"}}))
    rnd.shuffle(planned)  # the log's order is not time order, and merges happen midway
    for n, item in enumerate(firsts + planned):
        item["message_id"] = f"r{n}"
        if item["kind"] == "kanal":
            row = own_event(name=item["name"], message_id=item["message_id"], origin="email",
                            properties=item["properties"], user_id=item["user"],
                            anonymous_id=None, source_id=log.source, now_ms=item["ts"])
            with transaction(log.conn):
                append_events(log.conn, [row])
        elif item["kind"] == "goal":
            log.add("track", event=item["name"], user_id=item["user"], trusted=True,
                    ts=item["ts"], properties=item["properties"],
                    context=item.get("context"), message_id=item["message_id"])
        else:
            log.add(item["kind"], event="Thing" if item["kind"] == "track" else None,
                    user_id=item.get("user"), anon=item.get("anon"),
                    trusted=item.get("trusted", True), ts=item["ts"],
                    context=item.get("context"), message_id=item["message_id"])
    log.process()
    ids = dict(log.conn.execute("SELECT message_id, id FROM events"))
    for item in firsts + planned:
        item["id"] = ids[item["message_id"]]
    return firsts + planned


def naive(events: list[dict[str, Any]], *, since: int, until: int, goals: set[str],
          lookback: int, half_life: int) -> dict[str, Any]:
    """The definitions, one conversion at a time, straight from the generator's truth."""
    out: dict[str, Any] = {"conversions": 0, "revenue": 0.0, "un": 0, "un_revenue": 0.0,
                           "used": set(), "credit": {m: {} for m in MODELS}}
    for c in events:
        if not (c["kind"] == "goal" and c["name"] in goals and c["counts"]
                and since <= c["ts"] < until):
            continue
        out["conversions"] += 1
        out["revenue"] += c["revenue"]
        touches = sorted(
            (e["ts"], e["id"], e["touch"]) for e in events
            if e["person"] == c["person"] and e["touch"] is not None
            and c["ts"] - lookback <= e["ts"] and (e["ts"], e["id"]) <= (c["ts"], c["id"]))
        if not touches:
            out["un"] += 1
            out["un_revenue"] += c["revenue"]
            continue
        out["used"].update(t[1] for t in touches)
        n = len(touches)
        decay = [2 ** (-(c["ts"] - t[0]) / half_life) for t in touches]
        for model in MODELS:
            for i, (_, _, touch) in enumerate(touches):
                if model == "first_touch":
                    w = 1.0 if i == 0 else 0.0
                elif model == "last_touch":
                    w = 1.0 if i == n - 1 else 0.0
                elif model == "linear":
                    w = 1 / n
                elif model == "time_decay":
                    w = decay[i] / sum(decay)
                elif n == 1:
                    w = 1.0
                elif n == 2:
                    w = 0.5
                else:
                    w = 0.4 if i in (0, n - 1) else 0.2 / (n - 2)
                for d, dimension in enumerate(("channel", "campaign", "journey")):
                    cell = out["credit"][model].setdefault(dimension, {}).setdefault(
                        touch[d], [0.0, 0.0])
                    cell[0] += w
                    cell[1] += w * c["revenue"]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_a_naive_implementation(log: Log, seed: int) -> None:
    rnd = random.Random(seed)
    events = random_log(log, rnd, people=40)
    assert len(events) > 1500
    since, until = T0 + 30 * DAY, T0 + 80 * DAY
    settings = AttributionSettings(goal_events=("Order Completed", "Signed Up"),
                                   lookback_ms=10 * DAY, half_life_ms=3 * DAY)
    got = attribute(log.conn, since_ms=since, until_ms=until, settings=settings)
    want = naive(events, since=since, until=until, goals={"Order Completed", "Signed Up"},
                 lookback=10 * DAY, half_life=3 * DAY)
    assert want["conversions"] > 100 and want["un"] > 0
    assert got.conversions == want["conversions"]
    assert got.revenue == pytest.approx(want["revenue"], abs=1e-6)
    assert got.unattributed_conversions == want["un"]
    assert got.unattributed_revenue == pytest.approx(want["un_revenue"], abs=1e-6)
    assert got.touchpoints == len(want["used"])
    for model in MODELS:
        for dimension in ("channel", "campaign", "journey"):
            expected = want["credit"][model][dimension]
            actual = got.credit[model][dimension]
            assert set(actual) == {k for k, v in expected.items() if v[0] > 0}, (model, dimension)
            for key, (conversions, revenue) in actual.items():
                assert conversions == pytest.approx(expected[key][0], abs=1e-6)
                assert revenue == pytest.approx(expected[key][1], abs=1e-6)
    # every model hands out exactly the attributed conversions
    attributed = want["conversions"] - want["un"]
    for model in MODELS:
        for dimension in ("channel", "campaign", "journey"):
            assert sum(v[0] for v in got.credit[model][dimension].values()) == pytest.approx(
                attributed, abs=1e-6)
    # the report shows the same numbers, rounded
    rep = attribution_report(log.conn, since_ms=since, until_ms=until, settings=settings)
    assert rep["conversions"] == want["conversions"]
    for row in rep["models"]["time_decay"]["campaign"]:
        conversions, revenue = got.credit["time_decay"]["campaign"][row["key"]]
        assert (row["conversions"], row["revenue"]) == (round(conversions, 4), round(revenue, 2))
