"""Helpers of the on-site tests: a shop's files (messages, campaigns) and an in-process
collector on a real database of the engine under test and a fake clock."""

from __future__ import annotations

import hashlib
import hmac
import textwrap
from pathlib import Path
from typing import Any

from kanal_testing import App, make_app

DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0 Safari/537.36")
MOBILE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")

NEWSLETTER = """\
kind: marketing
defaults: {first_name: there}
onsite:
  title: "Hi {{ traits.first_name }}, 10% off your first order"
  body: "<p>Join <strong>our</strong> newsletter.</p>"
  form:
    email: true
    consent: "Yes, email me offers. I can unsubscribe at any time."
    topic: newsletter
    submit: Sign me up
    thanks: Check your inbox to confirm.
"""
SALE = """\
onsite:
  title: Spring sale
  body: "<p>Everything {{ data.percent | default('20') }}% off</p>"
  button: Shop the sale
  url: /sale
"""
CART = """\
onsite:
  title: "{{ traits.first_name | default('You') }}, your cart misses you"
  body: "<p>Come back to {{ data.event.product_id }}.</p>"
  button: Back to the cart
  url: https://shop.example/cart
"""


def write(root: Path, folder: str, files: dict[str, str]) -> Path:
    """Write YAML files into root/folder; returns the folder."""
    where = root / folder
    where.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (where / f"{name}.yaml").write_text(textwrap.dedent(text))
    return where


def onsite_app(root: Path, *, messages: dict[str, str], campaigns: dict[str, str],
               journeys: dict[str, str] | None = None, onsite: dict[str, Any] | None = None,
               channels: dict[str, Any] | None = None, segments: Any = None,
               sections: dict[str, Any] | None = None, **config: Any) -> App:
    """An in-process collector with these files, `[onsite]` and `[channels]` settings,
    other kanal.toml `sections` ([frequency], …) and Config fields (`rate_limit=0` for
    tests that make many requests)."""
    settings: dict[str, Any] = {
        **(sections or {}),
        "messages": {"messages_dir": str(write(root, "messages", messages))},
        "onsite": {"dir": str(write(root, "onsite", campaigns)), **(onsite or {})},
    }
    if channels:
        settings["channels"] = channels
    env = make_app(root / "kanal.db", sections=settings,
                   journeys_dir=write(root, "journeys", journeys or {}), **config)
    if segments is not None:
        from kanal_collector.profiles.segments import parse_segments
        from kanal_collector.store import segments as store
        from kanal_collector.store.db import transaction

        conn = env.app.extensions["kanal"].db.conn()
        with transaction(conn):
            store.put_segment_definitions(
                conn, {s.name: s.definition for s in parse_segments(segments)},
                int(env.clock.now() * 1000))
    return env


def user_hash(env: App, user_id: str) -> str:
    """What the shop's backend renders for a signed-in customer."""
    return hmac.new(env.keys["secret"].encode(), user_id.encode(), hashlib.sha256).hexdigest()


def process(env: App) -> int:
    """Let the processor (on the app's fake clock) apply everything ingested so far."""
    from kanal_collector.app import build_processor

    processor = build_processor(env.app.extensions["kanal"].db, clock=env.clock)
    try:
        return processor.catch_up()
    finally:
        processor.close()


def send(env: App, *messages: dict[str, Any], secret: bool = False) -> None:
    """Ingest messages (public key unless `secret`) and let the processor apply them."""
    key = env.keys["secret" if secret else "public"]
    r = env.client.post("/v1/batch", json={"batch": list(messages)}, auth=(key, ""))
    assert r.status_code == 200, r.get_json()
    process(env)


def pull(env: App, anon: str, url: str = "https://shop.example/", *, ua: str = DESKTOP,
         user: str | None = None, hashed: str | None = None) -> list[dict[str, Any]]:
    """The messages of one page view (the answer must be private and uncached)."""
    body = {"k": env.keys["public"], "a": anon, "url": url, "l": "en-GB"}
    if user:
        body.update(u=user, x=hashed)
    r = env.client.post("/onsite/pull", json=body, headers={"User-Agent": ua})
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "private, no-store"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    messages: list[dict[str, Any]] = r.get_json()["messages"]
    return messages


def report(env: App, anon: str, item: dict[str, Any], action: str) -> Any:
    """Tell the collector what this browser did with a message."""
    return env.client.post("/onsite/event", json={
        "k": env.keys["public"], "a": anon, "ticket": item["ticket"], "action": action,
        "url": "https://shop.example/"})
