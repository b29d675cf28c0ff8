"""Language variants follow BCP 47 matching, may have their own defaults, and email says
its language (Content-Language); the console channel shows what the channel it stands
in for would send, and to whom."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import db_at
from messages_util import CART, World, channel

from kanal_collector.channels.base import OutgoingMessage
from kanal_collector.channels.plugins import build_channels, new_plugin_manager
from kanal_collector.channels.smtp import EmailChannel
from kanal_collector.config import Config
from kanal_collector.errors import ConfigError
from kanal_collector.messages import Catalog, choose_language, parse_message
from kanal_collector.messages.languages import format_language, is_language_tag

AVAILABLE = ["en", "sv", "no", "pt-br", "zh-hant", "he", "fil"]


@pytest.mark.parametrize(("wanted", "expected"), [
    ("sv-SE", "sv"),             # RFC 4647 lookup: drop the region
    ("sv_se", "sv"),
    ("SV", "sv"),
    ("nb", "no"),                # Bokmål reads the Norwegian variant
    ("nb-NO", "no"),
    ("nn", "no"),
    ("no", "no"),
    ("pt", "pt-br"),             # the same language in another region
    ("pt-PT", "pt-br"),
    ("zh-Hant-TW", "zh-hant"),
    ("iw", "he"),                # deprecated tags
    ("tl", "fil"),
    ("de", "en"),                # no match: the default
    (None, "en"),
    ("", "en"),
])
def test_bcp47_matching(wanted: str | None, expected: str) -> None:
    assert choose_language(AVAILABLE, wanted, "en") == expected


@pytest.mark.parametrize(("available", "wanted", "expected"), [
    (["en", "nb"], "no", "nb"),          # a Norwegian profile gets the Bokmål variant
    (["en", "nn"], "no-NO", "nn"),
    (["en", "nb", "nn"], "nn", "nn"),    # the exact one beats the stand-in
    (["en", "nb", "nn"], "no", "nb"),    # Bokmål first
    (["en", "nn"], "nb", "nn"),
])
def test_norwegian(available: list[str], wanted: str, expected: str) -> None:
    assert choose_language(available, wanted, "en") == expected


def test_format_and_check_tags() -> None:
    assert format_language("sv-se") == "sv-SE"
    assert format_language("zh-hant-tw") == "zh-Hant-TW"
    assert format_language("es-419") == "es-419"
    assert is_language_tag("sv_SE") and is_language_tag("zh-Hant")
    assert not is_language_tag("swedish!") and not is_language_tag("s")


def test_a_language_may_have_its_own_defaults() -> None:
    m = parse_message({
        "name": "hi", "defaults": {"first_name": "there", "shop": "Shop"},
        "sms": {"text": "Hi {{ traits.first_name }} from {{ traits.shop }}"},
        "languages": {"sv": {"defaults": {"first_name": "du"},
                             "sms": {"text": "Hej {{ traits.first_name }} från "
                                             "{{ traits.shop }}"}},
                      "nb": {"defaults": {"first_name": "du"}}}})
    assert m.render("sms").content["text"] == "Hi there from Shop"
    assert m.render("sms", language="sv-SE").content["text"] == "Hej du från Shop"
    # a variant with only defaults: the default language's text, the variant's defaults
    assert m.render("sms", language="no").content["text"] == "Hi du from Shop"
    assert m.render("sms", language="sv", traits={"first_name": "Bo"}).content["text"] == \
        "Hej Bo från Shop"


def test_bad_language_tags_and_defaults_are_reported(tmp_path: Path) -> None:
    from kanal_collector.messages.definition import load_file
    from kanal_collector.messages.errors import DefinitionError

    path = tmp_path / "m.yaml"
    path.write_text("language: english!\nsms:\n  text: hi\nlanguages:\n  sv:\n"
                    "    defaults: [a]\n  'x y':\n    sms: {text: x}\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    found = [(p.line, p.where) for p in info.value.problems]
    assert found == [(1, "language"), (6, "languages.sv.defaults"), (7, "languages.x y")]


def test_email_carries_content_language(tmp_path: Path) -> None:
    world = World(tmp_path / "kanal.db")
    try:
        en = world.person("u1", email="a@example.com")
        sv = world.person("u2", email="b@example.com", language="sv-SE")
        world.enqueue(en, "k1")
        world.enqueue(sv, "k2")
        world.dispatcher.run_once()
        sent = {m.recipient: m for m in world.channels[0].sent}
        assert sent["a@example.com"].headers["Content-Language"] == "en"
        assert sent["b@example.com"].headers["Content-Language"] == "sv"
        assert sent["b@example.com"].content["subject"].startswith("Hej")
    finally:
        world.close()


def test_the_email_channel_writes_the_header() -> None:
    email = EmailChannel({"host": "127.0.0.1", "tls": "none", "from": "shop@example.com"})
    built = email.build(OutgoingMessage(1, "k", "a@example.com", {"subject": "s", "text": "t"},
                                        headers={"Content-Language": "sv-SE"}))
    assert built["Content-Language"] == "sv-SE"


# --- the console channel ------------------------------------------------------------


def _console(tmp_path: Path, name: str, **table: Any) -> Any:
    config = Config(db=db_at(tmp_path / "k.db"), sections={"channels": {name: {
        "type": "console", "path": str(tmp_path / "out.jsonl"), **table}}})
    return build_channels(config, new_plugin_manager(entry_points=False))[name]


@pytest.mark.parametrize(("name", "table", "kind", "identity"), [
    ("sms", {}, "sms", "phone"),
    ("email", {}, "email", "email"),
    ("push", {}, "push", "push_token"),
    ("dev", {}, "console", None),
    ("dev", {"stands_in_for": "sms"}, "sms", "phone"),
    ("sms", {"stands_in_for": "console"}, "console", None),
])
def test_a_console_channel_stands_in(tmp_path: Path, name: str, table: dict[str, Any],
                                     kind: str, identity: str | None) -> None:
    channel_ = _console(tmp_path, name, **table)
    assert (channel_.name, channel_.kind, channel_.recipient_identity) == (name, kind, identity)


def test_stands_in_for_must_be_a_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[channels.dev\]: stands_in_for must be one of"):
        _console(tmp_path, "dev", stands_in_for="fax")


def test_the_console_shows_the_sms_and_the_phone_number(tmp_path: Path) -> None:
    """The demo's `[channels.sms] type = "console"`: the SMS text and the person's phone,
    not the email (as it showed before)."""
    sms = _console(tmp_path, "sms")
    world = World(tmp_path / "kanal.db", channels=[channel("email"), sms])
    world.catalog = Catalog.from_dicts([CART])
    world.dispatcher = world.make_dispatcher()
    try:
        # Marketing SMS needs an opt-in (issue 13): u1 gave one.
        pid = world.person("u1", email="a@example.com", phone="+46701234567",
                           subscriptions={"sms": True})
        world.enqueue(pid, "k1", channel="sms")
        world.dispatcher.run_once()
        (line,) = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
        shown = json.loads(line)
        assert shown["channel"] == "sms"
        assert shown["stands_in_for"] == "sms"
        assert shown["recipient"] == "+46701234567"
        assert shown["content"] == {"text": "Cart waiting, there"}
    finally:
        world.close()
