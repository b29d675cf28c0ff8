"""The renderer and message definitions: languages, defaults, escaping, sandbox, errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from messages_util import CART

from kanal_collector.messages import (
    Catalog,
    DefinitionError,
    MessageError,
    RenderError,
    choose_language,
    load_directory,
    parse_message,
)


def message(**changes: Any) -> Any:
    data = copy.deepcopy(CART)
    data.update(changes)
    return parse_message(data)


@pytest.mark.parametrize("wanted,expected", [
    ("sv", "sv"), ("sv-SE", "sv"), ("sv_se", "sv"), ("SV", "sv"),
    ("pt-BR", "pt-br"), ("pt", "pt-br"), ("pt-PT", "pt-br"),
    ("de", "en"), (None, "en"), ("", "en"),
])
def test_choose_language(wanted: str | None, expected: str) -> None:
    assert choose_language(["en", "sv", "pt-br"], wanted, "en") == expected


def test_language_variant_and_field_fallback() -> None:
    m = message()
    sv = m.render("email", traits={"first_name": "Åsa"}, language="sv-SE")
    assert sv.language == "sv"
    assert sv.content["subject"] == "Hej Åsa"
    assert sv.content["text"] == "Hello Åsa"  # the variant has no text: the default's
    de = m.render("email", traits={"first_name": "Jo"}, language="de")
    assert de.language == "en" and de.content["subject"] == "Hi Jo, your cart"


def test_defaults_for_missing_traits() -> None:
    m = message(sms={"text": "Hi {{ traits.first_name }} {{ traits.last_name | "
                             "default('friend') }}{{ traits.nope }}."})
    assert m.render("sms").content["text"] == "Hi there friend."
    assert m.render("sms", traits={"first_name": ""}).content["text"] == "Hi there friend."
    assert m.render("sms", traits={"first_name": "Kim", "last_name": "Lee"}
                    ).content["text"] == "Hi Kim Lee."
    # A deep path through a missing trait is empty too, not an error.
    deep = message(sms={"text": "[{{ traits.address.city }}]"})
    assert deep.render("sms").content["text"] == "[]"


def test_autoescape_is_for_html_only() -> None:
    m = message()
    out = m.render("email", traits={"first_name": "<b>Bo</b> & co"})
    assert out.content["html"] == "<p>Hello &lt;b&gt;Bo&lt;/b&gt; &amp; co</p>"
    assert out.content["text"] == "Hello <b>Bo</b> & co"
    assert out.content["subject"] == "Hi <b>Bo</b> & co, your cart"
    assert m.render("sms", traits={"first_name": "<Bo>"}).content["text"] == \
        "Cart waiting, <Bo>"


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ traits.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{% set x = data.update({'a': 1}) %}{{ data }}",
    "{{ traits.pop('first_name') }}",
])
def test_sandbox_refuses_unsafe_access(template: str) -> None:
    m = message(sms={"text": template})
    with pytest.raises(RenderError) as info:
        m.render("sms", traits={"first_name": "x"}, data={"b": 2})
    assert "sms.text" in str(info.value)


@pytest.mark.parametrize("changes,expected", [
    ({"sms": {"text": "{{ traits.first_name "}}, "sms.text: template line 1"),
    ({"sms": {"text": "{{ traits.first_name | shout }}"}}, "No filter named 'shout'"),
    ({"sms": {"text": "{{ trait.first_name }}"}}, "unknown name trait"),
    ({"sms": {"text": "{% for x in items %}{{ x }}{% endfor %}"}}, "unknown name items"),
    ({"email": {"html": "<p>hi</p>"}}, "email.subject: required"),
    ({"email": {"subject": "s"}}, "email needs html or text"),
    ({"email": {"subject": "s", "text": "t", "body": "b"}}, "unknown field body"),
    ({"sms": {"text": 5}}, "sms.text: must be a string"),
    ({"kind": "promo"}, "kind` must be marketing or transactional"),
    ({"colour": "red"}, "unknown key colour"),
    ({"languages": {"sv": {"fax": {}}}}, "languages.sv.fax: unknown key fax"),
    ({"languages": {"en": {"sms": {"text": "x"}}}}, "repeats the default language"),
    ({"languages": {"sv": {"sms": {"text": "{{ x( }}"}}}},
     "languages.sv.sms.text: template line 1"),
])
def test_bad_definitions_are_clear_errors(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(DefinitionError) as info:
        message(**changes)
    assert expected in str(info.value)


def test_no_content_and_unknown_kind() -> None:
    with pytest.raises(DefinitionError, match="no content"):
        parse_message({"name": "empty", "kind": "marketing"})
    m = parse_message({"name": "t", "sms": {"text": "hi"}})
    with pytest.raises(MessageError, match="no email content"):
        m.render("email")


def test_webhook_push_and_console_content() -> None:
    m = message(webhook={"payload": {"user": "{{ traits.first_name }}", "n": 3,
                                     "tags": ["a-{{ message.name }}", True]}},
                push={"title": "T", "body": "B {{ profile.id }}",
                      "data": {"url": "/cart/{{ data.cart }}"}})
    assert m.render("webhook", traits={"first_name": "Al"}).content == {
        "payload": {"user": "Al", "n": 3, "tags": ["a-cart", True]}}
    push = m.render("push", profile={"id": 7}, data={"cart": "c1"})
    assert push.content == {"title": "T", "body": "B 7", "data": {"url": "/cart/c1"}}
    # No console content of its own: the console shows the email.
    assert m.render("console").content["subject"] == "Hi there, your cart"


def test_yaml_directory_and_refresh(tmp_path: Path) -> None:
    d = tmp_path / "messages"
    d.mkdir()
    (d / "welcome.yaml").write_text(
        "kind: transactional\nemail:\n  subject: Welcome {{ traits.first_name }}\n"
        "  text: Hi\nlanguages:\n  sv:\n    email:\n      subject: Välkommen\n",
        encoding="utf-8")
    catalog = Catalog.from_directory(d)
    assert list(catalog.messages) == ["welcome"]
    assert catalog.get("welcome").render("email", language="sv").content["subject"] == \
        "Välkommen"
    with pytest.raises(MessageError, match="no message named 'nope'"):
        catalog.get("nope")
    (d / "promo.yml").write_text("name: promo\nsms:\n  text: Sale!\n", encoding="utf-8")
    assert catalog.refresh() is True
    assert set(catalog.messages) == {"welcome", "promo"}
    # A broken edit keeps the last good messages.
    (d / "promo.yml").write_text("name: promo\nsms:\n  text: '{{ oops'\n", encoding="utf-8")
    assert catalog.refresh() is False
    assert "promo" in catalog


def test_directory_errors_name_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("sms: {text: '{{ x }}'}\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("sms: [oops\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("name: a\nsms: {text: fine}\n", encoding="utf-8")
    (tmp_path / "d.yaml").write_text("name: a\nsms: {text: twice}\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_directory(tmp_path)
    text = str(info.value)
    assert "a.yaml" in text and "unknown name x" in text
    assert "b.yaml:2: invalid YAML" in text
    assert "d.yaml: name: message 'a' is also defined in" in text
