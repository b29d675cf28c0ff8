"""The small HTML pages of the tracking routes (no scripts, no external resources), in
the person's language (locale.py; the strings live in `locales/*.toml`)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .locale import Words
from .prefs import Choice

_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
          "padding:0 1rem;color:#222}button{font:inherit;padding:.5rem 1rem;"
          "margin:.25rem 0}fieldset{border:1px solid #ccc;margin:1rem 0}"
          "label{display:block}")


def page(title: str, body: str, words: Words) -> str:
    """A whole page; `title` and `body` are HTML."""
    return (f'<!doctype html><html lang="{escape(words.language)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{title}</title>'
            f'<style>{_STYLE}</style></head><body><h1>{title}</h1>{body}'
            f'</body></html>')


def _capital(html: str) -> str:
    return html[:1].upper() + html[1:]


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{text}</a>'


def not_found(words: Words) -> str:
    """A link that was never sent, or is no longer valid."""
    return page(words.text("not_found_title"), f"<p>{words.text('not_found_text')}</p>",
                words)


def _form(action: str, scope: str, label: str) -> str:
    return (f'<form method="post" action="{escape(action)}">'
            f'<input type="hidden" name="scope" value="{scope}">'
            f'<button type="submit">{label}</button></form>')


def confirm_unsubscribe(action: str, channel: str, topic: str | None,
                        preferences: str | None, words: Words) -> str:
    """GET /u/…: what a POST would do, and the buttons that do it (all marketing on the
    channel, or only the email's topic)."""
    everything = words.all_marketing(channel)
    prefs = (f"<p>{words.text('or_choose', link=_link(preferences, words.text('choose_link')))}"
             f"</p>" if preferences else "")
    only = (_form(action, "topic", words.text("button_topic", topic=words.topic(topic)))
            if topic else "")
    return page(words.text("unsubscribe_title"), (
        f"<p>{words.text('confirm', what=everything)}</p>"
        f"{_form(action, 'all', _capital(words.text('button_all', what=everything)))}"
        f"{only}{prefs}"), words)


def unsubscribed(channel: str, topic: str | None, preferences: str | None,
                 words: Words) -> str:
    """After the POST: from the topic, or from all marketing on the channel."""
    what = words.topic(topic) if topic else words.all_marketing(channel)
    prefs = (f"<p>{words.text('prefs_after', link=_link(preferences, words.text('prefs_link')))}"
             f"</p>" if preferences else "")
    return page(words.text("unsubscribed_title"),
                f"<p>{words.text('unsubscribed_text', what=what)}</p>{prefs}", words)


def preferences(action: str, token: str, items: Sequence[Choice], saved: bool,
                words: Words) -> str:
    """The preference page: one checkbox per channel and per topic."""
    groups: dict[str, list[str]] = {}
    for item in items:
        checked = " checked" if item.subscribed else ""
        label = (escape(item.topic) if item.topic
                 else _capital(words.all_marketing(item.channel)))
        groups.setdefault(item.channel, []).append(
            f'<label><input type="checkbox" name="sub" value="{escape(item.key)}"'
            f'{checked}> {label}</label>')
    fields = "".join(f"<fieldset><legend>{escape(channel)}</legend>{''.join(rows)}"
                     f"</fieldset>" for channel, rows in groups.items())
    note = f"<p><strong>{words.text('saved')}</strong></p>" if saved else ""
    return page(words.text("preferences_title"), (
        f'{note}<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="token" value="{escape(token)}">{fields}'
        f'<button type="submit">{words.text("save")}</button></form>'), words)
