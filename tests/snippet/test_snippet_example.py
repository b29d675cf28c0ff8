"""The example shop (examples/shop/) works against a real collector, verified identify and all."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kanal_example_shop", ROOT / "examples" / "shop" / "server.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_uses_the_current_loader() -> None:
    loader = (ROOT / "js_snippet" / "loader.min.js").read_text().strip()
    page = (ROOT / "examples" / "shop" / "index.html").read_text()
    expected = (
        loader.replace('"WRITE_KEY"', "{{write_key}}")
        .replace('"https://kanal.example.com"', "{{host}}")
    )
    assert expected in page, "examples/shop/index.html: paste js_snippet/loader.min.js again"


def test_example_renders_no_secret() -> None:
    shop = load_example()
    page = shop.render("u123", host="http://c", write_key="pk", secret_key="sk_secret")
    assert "sk_secret" not in page
    assert shop.user_hash("sk_secret", "u123") in page
    assert "identify" not in shop.render(None, host="http://c", write_key="pk", secret_key="s")


@pytest.mark.browser
@pytest.mark.slow
def test_example_shop_end_to_end(collector: Any, shop: Any, page: Any) -> None:
    example = load_example()
    shop.pages["/"] = example.render(
        "u123", host=collector.url, write_key=collector.public_key,
        secret_key=collector.secret_key,
    )
    page.goto(shop.url + "/")
    page.wait_for_function("() => window.kanal && window.kanal.track")
    page.click("text=Add to cart >> nth=0")
    events = collector.wait_for_events(3)
    by_type = {e["type"]: e for e in events}
    assert by_type["identify"]["user_id"] == "u123"
    assert by_type["identify"]["verified"] == 1
    assert by_type["page"]["user_id"] == "u123"
    added = by_type["track"]
    assert added["event"] == "Product Added"
    assert added["body"]["properties"]["sku"] == "MUG-01"
