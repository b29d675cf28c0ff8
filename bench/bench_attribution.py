"""Attribution benchmark: the full report (all five models, three dimensions) over 100k
conversions and 1M touchpoints, beside the baseline measured in the same run: the same
SQL read (the same rows, joined and ordered the same way) fully iterated in Python,
summing the timestamps and doing nothing else.

    python bench/bench_attribution.py                       # 100k conversions, 1M touchpoints
    python bench/bench_attribution.py --conversions 10000 --touchpoints 100000

The database is built directly (events and profile_events rows, realistic bodies:
UTM landings, search/social/referral visits, Kanal's email/SMS/push events, plus
direct visits and plain events that are no touchpoint). Prints figures; never fails on
timing.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from kanal_collector.clock import utc_iso
from kanal_collector.profiles.step import KANAL_KEY_KIND
from kanal_collector.reports.attribution import MODELS, AttributionSettings, attribution_report
from kanal_collector.reports.touchpoints import MESSAGE_EVENTS
from kanal_collector.store import attribution as attribution_store
from kanal_collector.store import keys as keystore
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.events import slim_body
from kanal_collector.store.schema import migrate

T0 = 1_700_000_000_000
DAY = 86_400_000
SPAN = 90 * DAY  # events over 90 days; the report covers the last 60
UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
      "(KHTML, like Gecko) Version/17.1 Safari/605.1.15")
KANAL_INFO = {"browser": "Safari", "browserVersion": "17.1", "os": "Mac OS X",
              "osVersion": "10.15.7", "device": "desktop", "deviceModel": "Mac", "bot": False}
CAMPAIGNS = [("newsletter", "email", "spring_sale"), ("google", "cpc", "brand"),
             ("facebook", "paid_social", "retarget"), ("partner", "affiliate", "deals"),
             ("google", "cpc", "shoes")]
REFERRERS = ["https://www.google.com/", "https://l.facebook.com/", "https://www.bing.com/",
             "https://t.co/abc", "https://blog.example.org/best-shoes", "https://duckduckgo.com/"]
MESSAGES = [("Email Delivered", "email", "welcome", "onboarding"),
            ("Email Opened", "email", "welcome", "onboarding"),
            ("Email Link Clicked", "email", "cart_reminder", "abandoned_cart"),
            ("SMS Sent", "sms", "win_back_sms", "win_back"),
            ("Push Notification Sent", "push", "price_drop", "price_alerts")]
PRODUCTS = [{"product_id": f"p{i}", "sku": f"SKU-{i}", "name": f"Shoe {i}", "price": 49.5 + i,
             "quantity": 1, "category": "shoes"} for i in range(3)]


def _web_body(kind: str, n: int, anon: str, ts: int, *, page_url: str, referrer: str,
              campaign: dict[str, str] | None, event: str | None = None,
              properties: dict[str, Any] | None = None) -> dict[str, Any]:
    iso = utc_iso(ts / 1000)
    context: dict[str, Any] = {
        "page": {"path": "/shoes", "referrer": referrer, "search": "", "title": "Shoes",
                 "url": page_url},
        "userAgent": UA, "locale": "en-GB", "library": {"name": "kanal.js", "version": "1.0"},
        "ip": "203.0.113.7", "kanal": KANAL_INFO,
    }
    if campaign:
        context["campaign"] = campaign
    body: dict[str, Any] = {"type": kind, "messageId": f"m-{n:08d}-aaaa-bbbb", "anonymousId":
                            anon, "timestamp": iso, "originalTimestamp": iso, "sentAt": iso,
                            "receivedAt": iso, "context": context,
                            "properties": properties or {}}
    if event:
        body["event"] = event
    if kind == "page":
        body["name"] = "Shoes"
    return body


def build(path: Path, conversions: int, touchpoints: int, other: int, seed: int = 7) -> int:
    """Write the benchmark database; returns the number of events."""
    rnd = random.Random(seed)
    db = Database(path, synchronous="OFF")
    conn = db.conn()
    migrate(conn)
    source = keystore.create_source(conn, "default", T0)
    people = max(touchpoints // 10, 1)
    plan: list[tuple[int, int, str]] = []  # (profile, timestamp, what)
    plan += [(rnd.randrange(people), T0 + rnd.randrange(SPAN), "touch")
             for _ in range(touchpoints)]
    plan += [(rnd.randrange(people), T0 + 30 * DAY + rnd.randrange(SPAN - 30 * DAY), "order")
             for _ in range(conversions)]
    plan += [(rnd.randrange(people), T0 + rnd.randrange(SPAN), "other") for _ in range(other)]
    rnd.shuffle(plan)  # event ids are not in time order, as in a real log

    events: list[tuple[Any, ...]] = []
    links: list[tuple[int, int, int]] = []
    for n, (pid, ts, what) in enumerate(plan, start=1):
        anon = f"anon-{pid:07d}"
        kind, event, key_kind, origin = "page", None, "public", "web"
        if what == "order":
            kind, event, key_kind, origin = "track", "Order Completed", "secret", "server"
            body = _web_body("track", n, anon, ts, page_url="https://shop.example.com/thanks",
                             referrer="https://shop.example.com/cart", campaign=None,
                             event=event, properties={"order_id": f"o{n}", "products": PRODUCTS,
                                                      "revenue": round(rnd.uniform(10, 300), 2),
                                                      "currency": "EUR"})
        elif what == "other":
            if rnd.random() < 0.5:  # a direct visit: no referrer, no UTM
                body = _web_body("page", n, anon, ts, page_url="https://shop.example.com/",
                                 referrer="", campaign=None)
            else:
                kind, event = "track", "Product Viewed"
                body = _web_body("track", n, anon, ts, page_url="https://shop.example.com/p1",
                                 referrer="https://shop.example.com/", campaign=None,
                                 event=event, properties=PRODUCTS[0])
        else:
            roll = rnd.random()
            if roll < 0.45:  # a UTM landing (page view, or an event on the landing page)
                source_, medium, name = rnd.choice(CAMPAIGNS)
                campaign = {"source": source_, "medium": medium, "name": name}
                url = (f"https://shop.example.com/shoes?utm_source={source_}"
                       f"&utm_medium={medium}&utm_campaign={name}")
                if roll < 0.35:
                    body = _web_body("page", n, anon, ts, page_url=url, referrer="",
                                     campaign=campaign)
                else:
                    kind, event = "track", "Product Viewed"
                    body = _web_body("track", n, anon, ts, page_url=url, referrer="",
                                     campaign=campaign, event=event, properties=PRODUCTS[1])
            elif roll < 0.65:  # a visit from a search engine, social site or blog
                body = _web_body("page", n, anon, ts, page_url="https://shop.example.com/",
                                 referrer=rnd.choice(REFERRERS), campaign=None)
            else:  # Kanal's own message events
                event, channel, message, journey = rnd.choice(MESSAGES)
                kind, key_kind, origin = "track", KANAL_KEY_KIND, channel
                iso = utc_iso(ts / 1000)
                body = {"type": "track", "event": event, "messageId": f"kanal-outbox-{n}",
                        "anonymousId": anon, "timestamp": iso, "receivedAt": iso,
                        "context": {"library": {"name": "kanal"}},
                        "properties": {"outbox_id": n, "message": message, "journey": journey,
                                       "step": "1", "channel": channel, "kind": "journey",
                                       "profile_id": pid + 1}}
        slim = slim_body(body, body["messageId"], kind, event, None, anon, ts, ts)
        events.append((n, source, body["messageId"], kind, event, None, anon, origin, key_kind,
                       0, ts, ts, orjson.dumps(slim).decode()))
        links.append((pid + 1, ts, n))
    with transaction(conn):
        conn.executemany(
            "INSERT INTO events (id, source_id, message_id, type, event, user_id, "
            "anonymous_id, origin, key_kind, verified, timestamp, received_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
        conn.executemany("INSERT INTO profile_events (profile_id, timestamp, event_id) "
                         "VALUES (?, ?, ?)", links)
    db.close()
    return len(events)


def baseline(conn: Any, settings: AttributionSettings, since: int, until: int) -> int:
    """The same query as the report's, fully iterated, summing the timestamps."""
    total = 0
    for row in attribution_store.candidate_events(
            conn, goal_events=settings.goal_events, message_events=MESSAGE_EVENTS,
            kanal_key_kind=KANAL_KEY_KIND, since_ms=since, until_ms=until,
            lookback_ms=settings.lookback_ms):
        total += row[1]
    return total


def main() -> None:
    """Build the database, then time the baseline and the report (best of --repeat)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversions", type=int, default=100_000)
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--other", type=int, default=None,
                        help="events that are no touchpoint (default: touchpoints / 5)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    other = args.touchpoints // 5 if args.other is None else args.other
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "attribution.db"
        started = time.perf_counter()
        total = build(path, args.conversions, args.touchpoints, other)
        print(f"built {total:,} events ({args.conversions:,} conversions, "
              f"{args.touchpoints:,} touchpoints, {other:,} other) in "
              f"{time.perf_counter() - started:.1f} s")
        db = Database(path, synchronous="OFF")
        conn = db.conn()
        settings = AttributionSettings()
        since, until = T0 + 30 * DAY, T0 + SPAN
        times: dict[str, float] = {"baseline": float("inf"), "report": float("inf")}
        report: dict[str, Any] = {}
        for _ in range(args.repeat):
            started = time.perf_counter()
            baseline(conn, settings, since, until)
            times["baseline"] = min(times["baseline"], time.perf_counter() - started)
            started = time.perf_counter()
            report = attribution_report(conn, since_ms=since, until_ms=until,
                                        settings=settings, models=MODELS)
            times["report"] = min(times["report"], time.perf_counter() - started)
        db.close()
    print(f"  report: {report['conversions']:,} conversions "
          f"({report['unattributed']['conversions']:,} unattributed), "
          f"{report['touchpoints']:,} touchpoints credited, revenue {report['revenue']:,.2f}")
    print(f"  baseline (same SQL read, iterated): {times['baseline']:.2f} s")
    print(f"  attribution_report, {len(MODELS)} models: {times['report']:.2f} s "
          f"= {times['report'] / times['baseline']:.1f}x the baseline")


if __name__ == "__main__":
    main()
