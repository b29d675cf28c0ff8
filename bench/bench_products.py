"""Recommendations benchmark: building the lists and serving them, beside a plain SQL
co-occurrence count over the same rows (same run), at 1× and 10× (10k orders / 500
products and 100k orders / 5k products); and their quality: each customer's last order
is held out, and hit rate and recall at 10 of "bought together" and the personal mix are
printed beside popularity.

    python bench/bench_products.py                    # 1× and 10×
    python bench/bench_products.py --orders 100000 --products 5000 --scales 1

Data: customers with 1–5 orders of 1–3 products; popularity falls as 1/rank^0.7;
products come in complementary pairs (a mug and its saucer): after buying the first, a
customer buys the second in a later order 40 % of the time; 3 views per order. The
rows are written through Kanal's store (products imported as a feed would be). Prints
figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from kanal_collector.products import ProductSettings  # noqa: E402
from kanal_collector.products.build import build  # noqa: E402
from kanal_collector.products.importer import import_rows
from kanal_collector.products.recommend import recommend  # noqa: E402
from kanal_collector.store import product_activity as activity
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.schema import migrate

NOW = 1_790_000_000_000
DAY = 86_400_000

History = list[list[list[int]]]


def generate(orders: int, products: int, seed: int = 1) -> History:
    """Customers' orders (product numbers), oldest first."""
    rng = random.Random(seed)
    weights = [1.0 / (1 + i) ** 0.7 for i in range(products)]
    order = list(range(products))
    rng.shuffle(order)
    partner = {order[i]: order[i + 1] for i in range(0, products - 1, 2)}
    history: History = []
    made = 0
    while made < orders:
        mine: list[list[int]] = []
        follow: set[int] = set()
        for _ in range(min(rng.randint(1, 5), orders - made)):
            basket = set(rng.choices(range(products), weights, k=rng.randint(1, 3))) | follow
            follow = {partner[p] for p in basket if p in partner and rng.random() < 0.4}
            mine.append(sorted(basket))
            made += 1
        history.append(mine)
    return history


def load(db: Database, history: History, products: int, *, hold_out: bool) -> int:
    """Write the catalogue and the orders (without each last one when `hold_out`)."""
    conn = db.conn()
    import_rows(conn, [(i, {"id": f"p{i}", "title": f"Product {i}", "price": 5 + i % 50,
                            "link": f"https://shop.example/p{i}",
                            "image_link": f"https://shop.example/p{i}.jpg",
                            "product_type": f"Category {i % 40}", "brand": f"B{i % 25}"})
                        for i in range(products)], source="bench", now=NOW,
                default_currency="EUR", chunk=2000)
    lines = 0
    with transaction(conn):
        for person, orders in enumerate(history):
            kept = orders[:-1] if hold_out and len(orders) > 1 else orders
            for n, basket in enumerate(kept):
                at = NOW - (len(kept) - n) * 7 * DAY
                activity.add_order_lines(conn, [activity.OrderLine(
                    f"o{person}-{n}", f"p{item}", person, at, 1.0, 5.0, "EUR")
                    for item in basket])
                activity.record_activity(conn, [(person, "view", f"p{item}", at)
                                                for item in basket[:3]])
                lines += len(basket)
    return lines


PLAIN_SQL = (
    "WITH pp AS (SELECT DISTINCT profile_id, product_id FROM product_orders WHERE at >= ?) "
    "SELECT a.product_id, b.product_id, count(*) FROM pp a JOIN pp b "
    "ON a.profile_id = b.profile_id AND a.product_id != b.product_id "
    "GROUP BY a.product_id, b.product_id")
PLAIN_REQUEST = (
    "SELECT b.product_id, count(DISTINCT b.profile_id) AS n FROM product_orders a "
    "JOIN product_orders b ON a.profile_id = b.profile_id AND b.product_id != a.product_id "
    "WHERE a.product_id = ? GROUP BY b.product_id ORDER BY n DESC LIMIT 10")


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(0.95 * (len(samples) - 1))]
    return f"{statistics.median(samples) * 1000:.2f} / {p95 * 1000:.2f}"


def speed(orders: int, products: int, requests: int) -> tuple[float, float, float]:
    """Build time and request latency beside plain SQL, at one scale; (build s, plain SQL
    s, median request s)."""
    history = generate(orders, products)
    settings = ProductSettings(default_currency="EUR")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db", synchronous="OFF")
        migrate(db.conn())
        lines = load(db, history, products, hold_out=False)
        conn = db.conn()
        builds = []
        for _ in range(3):
            started = time.perf_counter()
            build(conn, settings, NOW)
            builds.append(time.perf_counter() - started)
        plains = []
        for _ in range(3):
            started = time.perf_counter()
            pairs = conn.execute(PLAIN_SQL, (NOW - settings.history_ms,)).fetchall()
            plains.append(time.perf_counter() - started)
        rng = random.Random(2)
        people = [rng.randrange(len(history)) for _ in range(requests)]
        served, plain = [], []
        for person in people:
            started = time.perf_counter()
            recommend(conn, settings, now_ms=NOW, profile_id=person, kind="bought_together",
                      n=10)
            served.append(time.perf_counter() - started)
            last = history[person][-1][0]
            started = time.perf_counter()
            conn.execute(PLAIN_REQUEST, (f"p{last}",)).fetchall()
            plain.append(time.perf_counter() - started)
        db.close()
    build_s, plain_s = statistics.median(builds), statistics.median(plains)
    print(f"{orders:>8,} orders {products:>6,} products {lines:>8,} lines | "
          f"build {build_s:6.2f} s  plain SQL pair count {plain_s:6.2f} s "
          f"({len(pairs):,} pairs)  ratio {build_s / plain_s:4.2f} | "
          f"recommend p50/p95 {_ms(served)} ms  plain SQL per request {_ms(plain)} ms",
          flush=True)
    return build_s, plain_s, statistics.median(served)


def quality(orders: int, products: int, customers: int) -> None:
    """Hold out each customer's last order; hit rate and recall at 10 per kind."""
    history = generate(orders, products, seed=3)
    settings = ProductSettings(default_currency="EUR")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db", synchronous="OFF")
        migrate(db.conn())
        load(db, history, products, hold_out=True)
        conn = db.conn()
        build(conn, settings, NOW)
        kinds = ("bought_together", "personal", "popular")
        hits = dict.fromkeys(kinds, 0)
        recall = dict.fromkeys(kinds, 0.0)
        tested = 0
        for person, mine in enumerate(history):
            if len(mine) < 2 or tested >= customers:
                continue
            seen = {f"p{i}" for basket in mine[:-1] for i in basket}
            target = {f"p{i}" for i in mine[-1]} - seen
            if not target:
                continue
            tested += 1
            for kind in kinds:
                got = {item["id"] for item in recommend(
                    conn, settings, now_ms=NOW, profile_id=person, kind=kind, n=10).items}
                hits[kind] += bool(got & target)
                recall[kind] += len(got & target) / len(target)
        db.close()
    print(f"quality at {orders:,} orders / {products:,} products, {tested:,} customers' "
          "last orders held out:")
    for kind in kinds:
        print(f"  {kind:<16} hit rate@10 {hits[kind] / tested:.3f}   "
              f"recall@10 {recall[kind] / tested:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders at 1×")
    parser.add_argument("--products", type=int, default=500, help="products at 1×")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--customers", type=int, default=3000,
                        help="customers whose last order is held out (quality)")
    args = parser.parse_args()
    figures = {scale: speed(args.orders * scale, args.products * scale, args.requests)
               for scale in args.scales}
    if len(figures) > 1:
        low, high = min(figures), max(figures)
        growth = [f"{b / a:.1f}×" for a, b in zip(figures[low], figures[high], strict=True)]
        print(f"growth {low}× → {high}× the data: build {growth[0]}, plain SQL pair count "
              f"{growth[1]}, one request {growth[2]}")
    top = max(args.scales)
    quality(args.orders * top, args.products * top, args.customers)


if __name__ == "__main__":
    main()
