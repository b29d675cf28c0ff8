"""The commerce demo: products, recommendations and four product journeys, end to end.

    pip install -e '.[server]' aiosmtpd      # from the repository root
    python examples/demo/run_commerce_demo.py

It starts a local SMTP server on 127.0.0.1:1025 that prints what it receives and `kanal
serve` on examples/demo/commerce.toml (journeys in commerce_journeys/, waits of seconds)
with a fresh database, then, while it runs:

1. imports the catalogue, `kanal products import examples/products/catalog.xml` (a Merchant
   Center RSS feed), and a year of past orders, `kanal import` (history: what "bought
   together" is learnt from);
2. as the shop's backend (the SDK, secret key): Ada views the teapot (browse
   abandonment: the teapot and three similar products, 5 s later), Bob asks to be told
   when the red mug is back, Cy puts the lamp in the cart, Dan orders the blue mug
   (cross-sell: what was bought with it, 5 s later);
3. as the shop's admin (the admin API): the red mug is back in stock (Bob's email) and
   the lamp's price drops by 25 % (Cy's email).

The four emails, with their product blocks, arrive at the SMTP server and are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from run_demo import HERE, run

CATALOGUE = HERE.parent / "products" / "catalog.xml"
CONFIG = HERE / "commerce.toml"
# Products bought together in the shop's past orders (what "bought together" learns).
PAIRS = [("MUG-BLUE", "SAUCER"), ("TEAPOT", "TEA-SENCHA"), ("MUG-TALL", "SPOON"),
         ("KETTLE", "TEA-SENCHA"), ("LAMP", "CANDLE")]
CUSTOMERS = {"ada": "Ada", "bob": "Bob", "cy": "Cy", "dan": "Dan"}


def kanal(*args: str, db: Path | str, config: Path = CONFIG) -> str:
    """Run a `kanal` command on the demo's database; its output."""
    done = subprocess.run([sys.executable, "-m", "kanal_collector", *args, "--db", str(db),
                           "--config", str(config)], cwd=HERE, capture_output=True,
                          text=True, check=True)
    return done.stdout


def import_catalogue_and_history(db: Path | str, folder: Path, config: Path = CONFIG) -> None:
    """The catalogue feed, and past orders (three buyers per pair, 10 to 60 days ago)."""
    print(kanal("products", "import", str(CATALOGUE), db=db, config=config).strip())
    now = datetime.now(UTC)
    history = folder / "past_orders.jsonl"
    with history.open("w", encoding="utf-8") as f:
        n = 0
        for a, b in PAIRS:
            for _ in range(3):
                n += 1
                when = now - timedelta(days=10 + 5 * n)
                f.write(json.dumps({
                    "userId": f"past-{n}", "event": "Order Completed",
                    "timestamp": when.isoformat(), "properties": {
                        "order_id": f"past-{n}", "currency": "EUR", "revenue": 20,
                        "products": [{"product_id": a, "price": 10, "quantity": 1},
                                     {"product_id": b, "price": 10, "quantity": 1}]}}) + "\n")
    print(kanal("import", str(history), db=db, config=config).strip())


def shop_backend(url: str, secret_key: str) -> None:
    """What the shop's backend sends: four customers and what they do."""
    import kanal as sdk

    client = sdk.Client(secret_key, host=url)
    for user, name in CUSTOMERS.items():
        client.identify(user, {"email": f"{user}@example.com", "first_name": name})
    client.track("ada", "Product Viewed", {"product_id": "TEAPOT"})
    client.track("bob", "Back in Stock Subscribed", {"product_id": "MUG-RED"})
    client.product_added("cy", product_id="LAMP", price=60.0, cart_id="cy-cart")
    client.order_completed("dan", order_id="dan-1", currency="EUR", revenue=12.0,
                           products=[{"product_id": "MUG-BLUE", "price": 12.0,
                                      "quantity": 1}])
    client.shutdown()
    print("[sdk] Ada viewed the teapot, Bob waits for the red mug, Cy carted the lamp, "
          "Dan ordered the blue mug", flush=True)


def change_products(url: str, admin_key: str) -> None:
    """The shop's admin: the red mug is back; the lamp is cheaper (admin API)."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    for pid, change in (("MUG-RED", {"availability": "in_stock"}),
                        ("LAMP", {"price": 45.0})):
        current = requests.get(f"{url}/api/products/{pid}", headers=auth, timeout=10)
        current.raise_for_status()
        body = {**current.json(), **change}
        if "price" in change:  # `prices` (every currency) would contradict the new price
            body.pop("prices")
        answer = requests.put(f"{url}/api/products/{pid}", headers=auth, timeout=10,
                              json=body)
        answer.raise_for_status()
    print("[admin] MUG-RED is back in stock; LAMP now costs 45.00 EUR", flush=True)


def commerce(db: Path, url: str, keys: dict[str, str], handler: Any) -> int:
    """The four commerce journeys; waits for their emails."""
    with tempfile.TemporaryDirectory(prefix="kanal-commerce-") as tmp:
        import_catalogue_and_history(db, Path(tmp))
    time.sleep(3)  # the processor takes the history in; the lists are rebuilt
    shop_backend(url, keys["secret"])
    change_products(url, keys["admin"])
    deadline = time.monotonic() + 90
    while len(handler.received) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    for mail in handler.received:
        print(f"[demo] {summary(mail)}", flush=True)
    print(f"[demo] {len(handler.received)} of 4 emails arrived.", flush=True)
    return 0 if len(handler.received) >= 4 else 1


def main() -> int:
    return run(commerce, config=CONFIG, description=__doc__.splitlines()[0], wait=90.0)


def summary(mail: Any) -> str:
    """The recipient, subject and product names of a received email."""
    import re

    html = mail.get_body(preferencelist=("html",))
    names = re.findall(r'font-weight:bold">([^<]+)<', html.get_content() if html else "")
    return f"{mail['To']}: {mail['Subject']} — {', '.join(names)}"


if __name__ == "__main__":
    sys.exit(main())
