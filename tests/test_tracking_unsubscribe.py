"""One-click unsubscribe means stop, on every marketing email, in the person's language
(issue 13): List-Unsubscribe on text-only marketing email and on every email channel,
and the unsubscribe and preference pages in en, sv, da, nb (no), fi and ru."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kanal_testing import make_app
from messages_util import World, channel
from test_tracking_http import BASE, _send

from kanal_collector.app import close_app
from kanal_collector.config import Config
from kanal_collector.messages import Catalog
from kanal_collector.tracking.hook import email_tracking_hook
from kanal_collector.tracking.locale import catalogs, choose

NEWS = {"name": "news", "kind": "marketing", "topic": "offers",
        "email": {"subject": "News", "text": "Our news. Stop: %%unsubscribe_url%%"}}


def test_a_text_only_marketing_email_on_any_email_channel_gets_list_unsubscribe(
        tmp_path: Path) -> None:
    config = Config(sections={
        "tracking": {"base_url": BASE},
        "channels": {"marketing": {"type": "email", "host": "smtp.example",
                                   "from": "news@shop.example"}}})
    world = World(tmp_path / "k.db", channels=[channel("marketing", kind="email")])
    try:
        world.catalog = Catalog.from_dicts([NEWS])
        world.dispatcher = world.make_dispatcher(
            before_send=[email_tracking_hook(config, world.clock)])
        pid = world.person("u1", email="a@example.com")
        world.enqueue(pid, "k1", channel="marketing", message="news")
        assert world.dispatcher.run_once() == 1
        [sent] = world.channels[0].sent
        assert "html" not in sent.content
        unsubscribe = re.fullmatch(r"<(https://t\.example\.com/u/[\w-]+)>",
                                   sent.headers["List-Unsubscribe"])
        assert unsubscribe is not None
        assert sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert sent.content["text"] == f"Our news. Stop: {unsubscribe.group(1)}"
    finally:
        world.close()


def test_catalogs_have_the_same_strings() -> None:
    found = catalogs()
    assert sorted(found) == ["da", "en", "fi", "nb", "ru", "sv"]
    for language, catalog in found.items():
        assert catalog.keys() == found["en"].keys(), language
        for table in ("pages", "all"):
            assert catalog[table].keys() == found["en"][table].keys(), (language, table)
            for key, text in catalog[table].items():
                placeholders = set(re.findall(r"{(\w+)}", found["en"][table][key]))
                assert set(re.findall(r"{(\w+)}", text)) <= placeholders, (language, key)


@pytest.mark.parametrize(("language", "accept", "expected"), [
    ("sv", None, "sv"), ("sv-SE", None, "sv"), ("da", None, "da"), ("no", None, "nb"),
    ("nn", None, "nb"), ("nb-NO", None, "nb"), ("fi", None, "fi"), ("ru", None, "ru"),
    ("de", None, "en"), (None, "fi-FI,fi;q=0.9,en;q=0.8", "fi"),
    (None, "de;q=0.9, da;q=0.8", "da"), (None, "ru;q=0, sv;q=0.1", "sv"),
    ("de", "de, ru", "ru"), (None, None, "en"), ("xx", "*", "en"),
])
def test_the_pages_language(language: str | None, accept: str | None,
                            expected: str) -> None:
    assert choose(language, accept) == expected


PAGES = {
    "en": ("Unsubscribe from all marketing email", "You are unsubscribed",
           "Your preferences"),
    "sv": ("Avregistrera mig från all marknadsföring via e-post", "Du är avregistrerad",
           "Dina inställningar"),
    "da": ("Afmeld al markedsføring via e-mail", "Du er afmeldt", "Dine indstillinger"),
    "no": ("Meld meg av all markedsføring på e-post", "Du er meldt av",
           "Innstillingene dine"),
    "fi": ("Peru kaikki sähköpostimarkkinointi", "Tilaus on peruttu", "Asetuksesi"),
    "ru": ("Отписаться: все маркетинговые письма", "Вы отписались", "Ваши настройки"),
}


@pytest.mark.parametrize("language", sorted(PAGES))
def test_the_pages_speak_the_persons_language(tmp_path: Path, language: str) -> None:
    env = make_app(tmp_path / "kanal.db", sections={"tracking": {"base_url": BASE}})
    try:
        sent = _send(env, html='<a href="%%preferences_url%%">p</a>',
                     traits={"language": language})
        html, path = sent.html, sent.unsubscribe_path()
        button, done, prefs = PAGES[language]
        confirm = env.client.get(path).get_data(as_text=True)
        code = "nb" if language == "no" else language
        assert f'<html lang="{code}">' in confirm
        assert button in confirm
        answer = env.client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert done in answer.get_data(as_text=True)
        preferences = re.search(r'href="https://t\.example\.com(/p/[^"]+)"', html)
        assert preferences is not None
        assert prefs in env.client.get(preferences.group(1)).get_data(as_text=True)
        # A stranger's browser language doesn't change the person's page …
        assert button in env.client.get(path, headers={"Accept-Language": "de"}).get_data(
            as_text=True)
        # … and a bad link answers in the browser's.
        missing = env.client.get("/u/nope", headers={"Accept-Language": "sv"})
        assert missing.status_code == 404
        assert "Länken hittades inte" in missing.get_data(as_text=True)
    finally:
        close_app(env.app)


def test_topic_names_are_escaped(tmp_path: Path) -> None:
    from kanal_collector.tracking.locale import words
    from kanal_collector.tracking.pages import confirm_unsubscribe

    html = confirm_unsubscribe("/u/x", "email", "<b>sale</b>", None, words("sv"))
    assert "<b>sale</b>" not in html and "&lt;b&gt;sale&lt;/b&gt;" in html
