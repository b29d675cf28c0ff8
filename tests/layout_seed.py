"""A shop with 90 days of history made to stress the dashboard's layout: many journeys
with long names and step ids, a split test with long arm names, orders in euros after
visits from campaigns with long names, costs, phone numbers, a segment that starts a
journey, a predictions fit, and Kanal's own delivery and segment events beside the
shop's — run through the real processor, journeys and timers on a
fake clock (journeys_util.Journeys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from journeys_util import Journeys

from kanal_collector.own_events import own_event
from kanal_collector.reports.costs import set_cost
from kanal_collector.store.db import transaction
from kanal_collector.store.segments import put_segment_definitions
from kanal_collector.tracking.events import append

DAYS = 90
JOURNEYS = [
    "welcome_series_for_new_newsletter_subscribers_in_germany_austria_and_switzerland",
    "abandoned_cart_reminder_with_personalised_product_recommendations",
    "post_purchase_cross_sell_for_returning_customers",
    "win_back_lapsed_customers_after_ninety_days",
    "birthday_voucher",
    "review_request_two_weeks_after_delivery",
    "back_in_stock_alert_for_wishlisted_products",
    "vip_tier_upgrade_announcement",
    "sms_shipping_updates_for_express_orders",
    "browse_abandonment_nudge",
    "loyalty_points_expiry_warning_thirty_days_ahead",
    "a",
]
CAMPAIGNS = ["spring_clearance_sale_2026_newsletter_segment_highly_engaged_customers",
             "brand_search_exact_match_germany", "retargeting_carousel_q2", "tiktok"]
SOURCES = [("newsletter", "email"), ("google", "cpc"), ("facebook", "social"),
           ("tiktok", "social")]
VIP = "vip_customers_with_a_lifetime_value_over_one_thousand_euros"
"""A segment (its entries are Kanal's own events) that starts a journey."""
SHOP = {"products": {"default_currency": "EUR"}, "costs": {"currency": "EUR"}}
"""The config sections the dashboard app needs beside the database."""


def _journey(i: int, name: str) -> str:
    split = """
          - id: subject_line_test_with_emoji_versus_plain_text
            split:
              holdout: 20
              arms:
                - {name: plain_text_subject_line_control_group, weight: 40,
                   steps: [{id: send_plain_subject, send: welcome, channel: email}]}
                - {name: emoji_subject_line_with_first_name_personalisation, weight: 40,
                   steps: [{id: send_emoji_subject, send: welcome, channel: email}]}
    """ if i == 0 else """
          - id: first_message_after_the_trigger_event_was_received
            send: welcome
            channel: email
    """
    trigger = f"{{segment: {VIP}}}" if name == "vip_tier_upgrade_announcement" else \
        "{event: Signed Up}"
    return f"""\
        name: {name}
        trigger: {trigger}
        goal: {{event: Order Completed, within: 14d}}
        steps:
          - id: wait_a_little_before_the_first_message
            wait: 1h{split}
          - wait: 1d
          - id: reminder_by_sms_to_the_mobile_number_on_file
            send: welcome
            channel: sms
        """


def seed(tmp: Path) -> Journeys:
    """The shop; the caller closes it."""
    env = Journeys(tmp)
    with transaction(env.conn) as conn:
        put_segment_definitions(conn, {VIP: {"all": [{"trait": "vip", "eq": True}]}},
                                env.now_ms())
    for i, name in enumerate(JOURNEYS):
        env.write(name, _journey(i, name))
    env.sync()
    buyers: list[tuple[str, int]] = []  # they order the day after signing up
    for day in range(DAYS):
        for n, (user, when) in enumerate(buyers):
            _order(env, user, when, n)
        buyers = []
        for k in range(2 if day % 7 else 5):
            user = f"customer_{day}_{k}"
            env.person(user, email=f"{user}@example.com",
                       phone=f"+49 151 {day:03d} {k:04d} 99", name=f"Customer {day} {k}",
                       vip=day % 4 == 0)
            env.track(user, "Signed Up")
            if (day + k) % 3 == 0 or (k == 1 and day % 2 == 0):
                buyers.append((user, day + k))
            _delivery(env, user, f"{day}-{k}")
        env.advance(86_400)
    conn = env.conn
    now = env.now_ms()
    set_cost(conn, "campaign", CAMPAIGNS[0], 1250.0, "EUR", now)
    set_cost(conn, "campaign", CAMPAIGNS[1], 380.5, "EUR", now)
    set_cost(conn, "channel", "email", 99.0, "EUR", now)
    set_cost(conn, "journey", JOURNEYS[0], 45.0, "EUR", now)
    _fit_predictions(env)
    env.log.process()
    return env


def _fit_predictions(env: Journeys) -> None:
    """Two years of orders of 400 more customers (as the predict tests simulate them)
    and a fit of the predictive models on them: the Predictions page's charts."""
    from predict_util import DAY as PREDICT_DAY
    from predict_util import simulate_orders, write_profiles

    from kanal_collector.predict.fit import run_fit
    from kanal_collector.predict.settings import PredictSettings

    now = env.now_ms()
    write_profiles(env.log.db, simulate_orders(400, start_ms=now - 700 * PREDICT_DAY,
                                               end_ms=now - 30 * PREDICT_DAY, seed=7))
    run_fit(env.log.db, PredictSettings.from_config(shop_config(env)), env.clock)


def _order(env: Journeys, user: str, seed: int, n: int) -> None:
    """A visit from a campaign, then an order in euros."""
    source, medium = SOURCES[seed % len(SOURCES)]
    campaign = CAMPAIGNS[seed % len(CAMPAIGNS)]
    env.log.add("page", user_id=user, ts=env.now_ms(), received=env.now_ms(),
                context={"campaign": {"source": source, "medium": medium, "name": campaign},
                         "page": {"url": "https://shop.example/?utm_source=" + source}})
    amount = 19.99 + (seed * 37 + n * 11) % 480 + (1200.0 if seed == 60 else 0)
    env.track(user, "Order Completed", order_id=f"o-{user}", revenue=round(amount, 2),
              currency="EUR")


def _delivery(env: Journeys, user: str, tag: str) -> None:
    """An email Kanal delivered to `user` (its own event, not the shop's)."""
    append(env.conn, [own_event(
        name="Email Delivered", message_id=f"kanal-outbox-{tag}-delivered", origin="email",
        properties={"outbox_id": 1}, user_id=user, anonymous_id=None,
        source_id=env.log.source, now_ms=env.now_ms())])


def shop_config(env: Journeys) -> Any:
    """The collector config for the seeded database."""
    from kanal_collector.config import Config

    return Config(db=env.log.db.target, journeys_dir=env.dir, sections=SHOP)
