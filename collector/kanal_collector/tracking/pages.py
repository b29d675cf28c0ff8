"""The small HTML pages of the tracking routes (no scripts, no external resources)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .prefs import Choice

_STYLE = ("body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
          "padding:0 1rem;color:#222}button{font:inherit;padding:.5rem 1rem;"
          "margin:.25rem 0}fieldset{border:1px solid #ccc;margin:1rem 0}"
          "label{display:block}")


def page(title: str, body: str) -> str:
    """A whole page."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{escape(title)}</title>'
            f'<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}'
            f'</body></html>')


def not_found() -> str:
    """A link that was never sent, or is no longer valid."""
    return page("Link not found",
                "<p>This link is not valid. If you followed it from an email, the "
                "email may be too old.</p>")


def _what(channel: str, topic: str | None) -> str:
    return (f"{escape(topic)} ({escape(channel)})" if topic
            else f"all {escape(channel)} marketing")


def confirm_unsubscribe(action: str, channel: str, topic: str | None,
                        preferences: str | None) -> str:
    """GET /u/…: what a POST would do, and the button that does it."""
    prefs = (f'<p>Or <a href="{escape(preferences)}">choose what you receive</a>.</p>'
             if preferences else "")
    all_button = (f'<form method="post" action="{escape(action)}">'
                  f'<input type="hidden" name="scope" value="all">'
                  f'<button type="submit">Unsubscribe from {_what(channel, None)}</button>'
                  f'</form>' if topic else "")
    return page("Unsubscribe", (
        f"<p>Stop receiving {_what(channel, topic)}?</p>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">Unsubscribe</button></form>{all_button}{prefs}'))


def unsubscribed(channel: str, topic: str | None, preferences: str | None) -> str:
    """After the POST."""
    prefs = (f'<p>You can <a href="{escape(preferences)}">change your preferences</a> '
             f'at any time.</p>' if preferences else "")
    return page("You are unsubscribed",
                f"<p>You will no longer receive {_what(channel, topic)}.</p>{prefs}")


def preferences(action: str, token: str, items: Sequence[Choice], saved: bool) -> str:
    """The preference page: one checkbox per channel and per topic."""
    groups: dict[str, list[str]] = {}
    for item in items:
        checked = " checked" if item.subscribed else ""
        label = (escape(item.topic) if item.topic
                 else f"All {escape(item.channel)} marketing")
        groups.setdefault(item.channel, []).append(
            f'<label><input type="checkbox" name="sub" value="{escape(item.key)}"'
            f'{checked}> {label}</label>')
    fields = "".join(f"<fieldset><legend>{escape(channel)}</legend>{''.join(rows)}"
                     f"</fieldset>" for channel, rows in groups.items())
    note = "<p><strong>Your preferences are saved.</strong></p>" if saved else ""
    return page("Your preferences", (
        f'{note}<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="token" value="{escape(token)}">{fields}'
        f'<button type="submit">Save</button></form>'))
