"""The commerce examples end to end: aiosmtpd, `kanal serve`, the SDK, the admin API.

examples/demo/run_commerce_demo.py's steps run against a real collector process on
loopback with the demo's journeys (browse abandonment, back in stock, price drop,
post-purchase cross-sell); the emails, with their product blocks, arrive at a real SMTP
server. Then a click on a recommended product and its purchase show in the report.
"""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from kanal_testing import SmtpCatcher, poll, query, start_collector

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return query(db, sql, *args)


def _html(mail: Any) -> str:
    part = mail.get_body(preferencelist=("html",))
    return str(part.get_content()) if part is not None else ""


def _blocks(html: str) -> list[str]:
    return re.findall(r'font-weight:bold">([^<]+)<', html)


def test_the_commerce_examples_send_product_blocks(tmp_path: Path,
                                                   smtp: tuple[Any, SmtpCatcher]) -> None:
    controller, handler = smtp
    port = _free_port()
    config = tmp_path / "commerce.toml"
    config.write_text((DEMO / "commerce.toml").read_text()
                      .replace("port = 1025", f"port = {controller.port}")
                      .replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
                      # the test clicks at once; a person is never that fast (bot check)
                      + "\n[tracking]\nbot_click_seconds = 0\n")
    db = tmp_path / "kanal.db"
    collector = start_collector(db, args=["--config", str(config), "--port", str(port)],
                                cwd=DEMO)
    sys.path.insert(0, str(DEMO))
    try:
        import run_commerce_demo as demo

        demo.import_catalogue_and_history(collector.db, tmp_path, config)
        # the processor takes the past orders in, and the worker builds the lists
        assert poll(lambda: _query(db, "SELECT count(*) FROM product_recs WHERE kind = "
                                        "'bought_together' AND product_id = 'MUG-BLUE'")
                     [0][0]), "".join(collector.output)
        demo.shop_backend(collector.url, collector.secret_key)
        demo.change_products(collector.url, collector.admin_key)
        mails = poll(lambda: len(handler.received) >= 4 and
                     [message for _, message in handler.received], timeout=90)
        assert mails, f"{len(handler.received)} emails:\n" + "".join(collector.output)
        by = {m["To"]: m for m in mails}
        assert set(by) == {"ada@example.com", "bob@example.com", "cy@example.com",
                           "dan@example.com"}

        ada = _html(by["ada@example.com"])  # browse abandonment: the teapot and 3 similar
        assert by["ada@example.com"]["Subject"] == "Ada, still thinking about it?"
        assert _blocks(ada)[0] == "Cast iron teapot" and len(_blocks(ada)) == 4
        # same category and brand, same category, same brand (the more popular first)
        assert _blocks(ada)[1:] == ["Stovetop kettle", "Glass teapot",
                                    "Espresso spoons, set of 4"]
        assert 'src="https://shop.example/img/teapot.jpg"' in ada
        assert "45.00 EUR" in ada
        assert f"http://127.0.0.1:{port}/c/" in ada  # tracked links

        bob = by["bob@example.com"]  # back in stock
        assert bob["Subject"] == "Red mug is back in stock"
        assert _blocks(_html(bob))[0] == "Red mug"

        cy = by["cy@example.com"]  # price drop: what it costs now
        assert cy["Subject"] == "Now 45.00 EUR: Reading lamp"
        assert "was 60.00 EUR" in _html(cy) and _blocks(_html(cy)) == ["Reading lamp"]

        dan = _html(by["dan@example.com"])  # cross-sell: bought together with the blue mug
        assert by["dan@example.com"]["Subject"] == "Dan, goes well with your order"
        assert _blocks(dan)[0] == "Stoneware saucer"
        assert "Blue mug" not in _blocks(dan)  # the order's own product is not offered

        # back in stock is once per person and product: out and in again tells no one
        auth = {"Authorization": f"Bearer {collector.admin_key}"}
        for availability in ("out_of_stock", "in_stock"):
            current = requests.get(f"{collector.url}/api/products/MUG-RED", headers=auth,
                                   timeout=10).json()
            requests.put(f"{collector.url}/api/products/MUG-RED", headers=auth, timeout=10,
                         json={**current, "availability": availability}).raise_for_status()
        last = _query(db, "SELECT max(id) FROM product_history")[0][0]
        assert poll(lambda: _query(db, "SELECT position FROM cursors WHERE name = "
                                        "'products.signals'")[0][0] >= last)
        assert _query(db, "SELECT count(*) FROM events WHERE event = "
                          "'Product Back in Stock'") == [(1,)]

        # Dan clicks the saucer and buys it: the report credits bought_together
        link = re.search(r'<a href="([^"]+)" style="font-weight:bold">Stoneware saucer', dan)
        assert link is not None
        click = requests.get(link.group(1), allow_redirects=False, timeout=10,
                             headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) "
                                                    "Gecko/20100101 Firefox/128.0"})
        assert click.status_code == 302
        assert click.headers["Location"] == "https://shop.example/p/saucer"
        assert poll(lambda: _query(db, "SELECT count(*) FROM events WHERE event = "
                                        "'Email Link Clicked'")[0][0])
        import kanal as sdk

        client = sdk.Client(collector.secret_key, host=collector.url)
        client.order_completed("dan", order_id="dan-2", currency="EUR", revenue=6.0,
                               products=[{"product_id": "SAUCER", "price": 6.0,
                                          "quantity": 1}])
        client.shutdown()

        def credited() -> Any:
            doc = requests.get(f"{collector.url}/api/reports/recommendations?since=1d",
                               headers=auth, timeout=10).json()
            return doc if doc["totals"]["conversions"] else None

        report = poll(credited, timeout=30)
        bot = _query(db, "SELECT body FROM events WHERE event = 'Email Link Clicked'")
        assert report, f"no conversion; click event: {bot}"
        row = next(r for r in report["kinds"] if r["kind"] == "bought_together")
        assert (row["clicks"], row["conversions"], row["revenue"]) == (1, 1, 6.0)
        assert any(m["message"] == "cross_sell" for m in report["messages"])
    finally:
        sys.path.remove(str(DEMO))
        sys.modules.pop("run_commerce_demo", None)
        sys.modules.pop("run_demo", None)
        collector.stop()
