"""Untrusted data can't aim a link (issue 13). A public key is in every page: an event
it sends may start a journey, but a link built from its properties (or from traits such
events wrote) must point at a host in [tracking] link_hosts, or the send fails naming
the host. Trusted data (a secret key, a userHash, imports, Kanal's own) and literal
links are unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journeys_util import Journeys
from messages_util import channel

from kanal_collector.config import Config
from kanal_collector.journeys.explain import explain, render
from kanal_collector.messages import Catalog, Dispatcher
from kanal_collector.messages.dispatcher import link_policy
from kanal_collector.messages.linkguard import LinkPolicy, aimed_hosts
from kanal_collector.messages.renderer import Trust
from kanal_collector.messages.taint import DATA_END, DATA_START
from kanal_collector.store import outbox as outbox_store

MESSAGES = [
    {"name": "aimed", "email": {"subject": "For you",
                                "html": '<a href="{{ data.event.url }}">Look</a>'}},
    {"name": "literal", "email": {"subject": "For you {{ data.event.name }}",
                                  "html": '<a href="https://partner.example/deal">Deal</a>'
                                          ' for {{ data.event.name }}'}},
    {"name": "trait", "email": {"subject": "Hi", "text": "Your page: {{ traits.website }}"}},
    {"name": "stepdata", "email": {
        "subject": "Hi {{ data.event.name }}",
        "html": '<a href="{{ data.cart_url }}">{{ data.event.name }}</a>'}},
]
JOURNEY = """\
name: {name}
trigger: {{event: {event}}}
entry: {{rule: every_time}}
steps:
  - send: {name}
    channel: email
    data: {{cart_url: "https://carts.partner.example/c/1"}}
"""


class Env(Journeys):
    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.email = channel("email")
        config = Config(public_url="https://shop.example", sections={
            "tracking": {"base_url": "https://t.shop.example"}})
        self.dispatcher = Dispatcher(self.log.db, self.clock, {"email": self.email},
                                     Catalog.from_dicts(MESSAGES), before_send=[],
                                     link_policy=link_policy(config))
        for message in MESSAGES:
            self.write(message["name"], JOURNEY.format(name=message["name"],
                                                       event=f"Go {message['name']}"))
        self.sync()

    def event(self, user: str, journey: str, *, trusted: bool, **props: Any) -> None:
        self.log.add("track", event=f"Go {journey}", user_id=user, trusted=trusted,
                     properties=props, ts=self.now_ms(), received=self.now_ms())
        self.log.process()
        self.dispatcher.drain()

    def row(self) -> outbox_store.OutboxRow:
        return outbox_store.listing(self.conn, limit=1)[0]

    def close(self) -> None:
        self.dispatcher.close()
        super().close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        e.person("ann")  # the shop's backend knows her (a secret key)
        yield e
    finally:
        e.close()


def test_a_public_key_cant_aim_a_link_at_any_site(env: Env) -> None:
    env.event("ann", "aimed", trusted=False, url="https://evil.example/login")
    row = env.row()
    assert row.state == "failed"
    assert row.reason is not None and "a link to evil.example came from untrusted data" \
        in row.reason
    assert row.untrusted == ("event",)
    assert env.email.sent == []
    report = explain(env.conn, "ann", "aimed", now_ms=env.now_ms())
    assert report["runs"][0]["trusted"] is False
    text = render(report)
    assert "failed at" in text and "evil.example" in text
    assert "untrusted data (a public key): it may not aim links" in text


def test_the_same_from_a_secret_key_sends(env: Env) -> None:
    env.event("ann", "aimed", trusted=True, url="https://evil.example/login")
    assert env.row().state == "sent"
    assert env.email.sent[0].content["html"] == \
        '<a href="https://evil.example/login">Look</a>'


def test_a_literal_external_link_sends(env: Env) -> None:
    env.event("ann", "literal", trusted=False, name="<b>Red shoes</b>")
    assert env.row().state == "sent"
    [sent] = env.email.sent
    assert sent.content["html"] == ('<a href="https://partner.example/deal">Deal</a> for '
                                    '&lt;b&gt;Red shoes&lt;/b&gt;')
    assert "\ue000" not in sent.content["subject"]  # no marks leave the renderer


def test_a_public_key_may_aim_at_the_shops_own_hosts(env: Env) -> None:
    env.event("ann", "aimed", trusted=False, url="https://shop.example/p/42")
    assert env.row().state == "sent"
    env.event("ann", "aimed", trusted=False, url="https://t.shop.example/x")
    assert env.row().state == "sent"


@pytest.mark.parametrize("url", [
    "https://shop.example@evil.example/",      # userinfo: the host is evil.example
    "https://shop.example.evil.example/",
    "//evil.example/x", "www.evil.example", "HTTPS://EVIL.EXAMPLE",
])
def test_tricks_dont_pass(env: Env, url: str) -> None:
    env.event("ann", "aimed", trusted=False, url=url)
    assert env.row().state == "failed", env.row().reason


def test_traits_untrusted_events_wrote_cant_aim_either(env: Env) -> None:
    env.log.add("identify", user_id="ann", trusted=False,
                traits={"website": "https://evil.example"}, ts=env.now_ms(),
                received=env.now_ms())
    env.event("ann", "trait", trusted=True)
    row = env.row()
    assert row.state == "failed" and "evil.example" in str(row.reason)
    env.advance(60)
    env.log.add("identify", user_id="ann", trusted=True,
                traits={"website": "https://ann.example"}, ts=env.now_ms(),
                received=env.now_ms())
    env.event("ann", "trait", trusted=True)
    assert env.row().state == "sent"


def test_trusted_data_beside_untrusted_data_may_name_its_own_hosts(env: Env) -> None:
    env.event("ann", "stepdata", trusted=False, name="Red shoes")
    assert env.row().state == "sent"
    [sent] = env.email.sent
    assert 'href="https://carts.partner.example/c/1"' in sent.content["html"]


def _marked(*parts: tuple[str, bool]) -> str:
    return "".join(f"{DATA_START}{t}{DATA_END}" if data else t for t, data in parts)


@pytest.mark.parametrize(("parts", "html", "hosts"), [
    ([('<a href="', False), ("https://evil.example/x", True), ('">', False)], True,
     ["evil.example"]),
    ([('<a href="https://shop.example/p/', False), ("42", True), ('">', False)], True, []),
    ([('<a href="https://shop.example', False), ("@evil.example", True), ('">', False)],
     True, ["evil.example"]),
    ([("Visit ", False), ("https://evil.example", True)], False, ["evil.example"]),
    ([("Visit https://", False), ("evil.example", True), ("/x", False)], False,
     ["evil.example"]),
    # A URL in another's query is part of that link (to the shop, which may redirect).
    ([("Visit https://shop.example/?q=", False), ("https://evil.example", True)], False, []),
    ([("no links here ", False), ("at all", True)], False, []),
])
def test_aimed_hosts(parts: list[tuple[str, bool]], html: bool, hosts: list[str]) -> None:
    assert aimed_hosts(_marked(*parts), html=html) == hosts


def test_link_hosts_setting() -> None:
    policy = link_policy(Config(public_url="https://shop.example"))
    assert policy.hosts == ("shop.example",)  # the tracking host is the same here
    policy = link_policy(Config(public_url="https://shop.example", sections={"tracking": {
        "base_url": "https://t.example.com", "link_hosts": ["*.shop.example"]}}))
    assert policy.hosts == ("*.shop.example", "t.example.com")
    policy = LinkPolicy(("*.shop.example", "partner.example"))
    assert policy.allows("a.shop.example") and policy.allows("PARTNER.example")
    assert not policy.allows("shop.example") and not policy.allows("evilshop.example")
    assert not policy.allows("partner.example.evil.example")


def test_a_render_without_untrusted_reads_checks_nothing() -> None:
    catalog = Catalog.from_dicts(MESSAGES)
    rendered = catalog.get("aimed").render(
        "email", data={"event": {"url": "https://anything.example"}},
        trust=Trust(LinkPolicy(), untrusted_data=()))
    assert rendered.content["html"] == '<a href="https://anything.example">Look</a>'
