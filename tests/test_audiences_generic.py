"""The generic destinations: `webhook` (signed like the webhook channel, the same
Idempotency-Key for the same batch, the SSRF guard) and `csv` (a header, one line per
change, hashes only)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from audiences_util import Shop

from kanal_collector.audiences.errors import PermanentError, TransientError
from kanal_collector.audiences.webhook import WebhookDestination
from kanal_collector.channels import netguard
from kanal_collector.channels.webhook import verify

URL = "https://hooks.partner.example/kanal"
WEBHOOK = f"""\
[audiences.partner]
destination = "webhook"
segment = "vips"
url = "{URL}"
secret = "whsec"
batch_size = 2
"""


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def public_dns() -> Iterator[None]:
    previous = netguard.set_resolver(lambda host, port: ["93.184.216.34"])
    yield
    netguard.set_resolver(previous)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path, WEBHOOK)
    yield s
    s.close()


def test_webhook_batches_are_signed_and_carry_hashes_only(shop: Shop,
                                                          public_dns: None) -> None:
    for user in ("ada", "bob", "cy"):
        shop.person(user, phone=None)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, URL, status=503)          # the first try fails …
        mock.add(responses.POST, URL, json={"ok": True})   # … and goes again as it was
        mock.add(responses.POST, URL, json={"ok": True})
        assert shop.sync("partner").state == "waiting"
        shop.clock.advance(30)
        assert shop.sync("partner").state == "done"
        calls = list(mock.calls)
    assert len(calls) == 3
    first, again, second = (c.request for c in calls)
    assert first.body == again.body
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"]
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    for request in (again, second):
        assert verify("whsec", request.headers["X-Kanal-Signature"], request.body,
                      now=int(request.headers["X-Kanal-Signature"][2:12]))
    body = json.loads(again.body)
    assert body["audience"] == "partner" and body["action"] == "add"
    assert body["members"][0] == {"email_sha256": h("ada@example.com")}
    sent = b"".join(c.request.body for c in calls).decode()
    assert "@example.com" not in sent


def test_webhook_refusals(public_dns: None) -> None:
    destination = WebhookDestination({"url": URL, "secret": "s"}, audience="a")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, URL, status=429, headers={"Retry-After": "60"})
        with pytest.raises(TransientError) as info:
            destination.send("add", [{"email_sha256": "x"}])
        assert info.value.retry_after == 60
        mock.add(responses.POST, URL, status=400, body="bad")
        with pytest.raises(PermanentError, match="webhook answered 400"):
            destination.send("add", [{"email_sha256": "x"}])


def test_webhook_reaches_no_private_address() -> None:
    local = WebhookDestination({"url": "http://127.0.0.1:9/x", "secret": "s"}, audience="a")
    with pytest.raises(PermanentError, match="webhook refused: .*127.0.0.1"):
        local.send("add", [{"email_sha256": "x"}])


def test_csv_lines(tmp_path: Path) -> None:
    shop = Shop(tmp_path, f"""\
        [audiences.export]
        destination = "csv"
        segment = "vips"
        path = "{tmp_path / 'vips.csv'}"
        identifiers = ["email", "phone", "name"]
        """)
    try:
        shop.person("ada", phone="+46701234567", firstName="Ada")
        shop.person("bob")
        shop.sync("export")
        shop.identify("bob", vip=False)
        shop.sync("export")
        with (tmp_path / "vips.csv").open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    finally:
        shop.close()
    assert [(r["action"], r["email_sha256"]) for r in rows] == [
        ("add", h("ada@example.com")), ("add", h("bob@example.com")),
        ("remove", h("bob@example.com"))]
    assert rows[0]["phone_sha256"] == h("+46701234567")
    assert rows[0]["first_name_sha256"] == h("ada") and rows[0]["city_sha256"] == ""
    assert rows[0]["at"].endswith("Z")
    text = (tmp_path / "vips.csv").read_text()
    assert text.count("action,at,") == 1 and "example.com" not in text
