"""Email tracking: links, opens, unsubscribe, preferences, and the events they become.

    settings.py  the [tracking] table of kanal.toml
    tokens.py    signed tokens (HMAC-SHA256, key rotation, constant-time compare)
    keys.py      which keys sign and verify; `kanal tracking rotate-key`
    links.py     link rewriting and the open pixel
    email.py     prepare_message: what the before-send step does
    hook.py      email_tracking_hook: the dispatcher's before_send hook
    bots.py      bot, link scanner and mail-proxy flags
    events.py    "Email Opened", "Email Link Clicked", "Unsubscribed", "Subscribed"
    prefs.py     subscription choices of the preference page
    pages.py     the HTML pages
    locale.py    their languages (the strings: locales/<language>.toml)
    routes.py    /c/<token>, /o/<token>.gif, /u/<token>, /p/<token>
"""

from __future__ import annotations

from .email import (
    click_url,
    open_url,
    preferences_url,
    prepare_email,
    prepare_message,
    unsubscribe_url,
)
from .routes import tracking_blueprint
from .settings import TrackingSettings

__all__ = [
    "TrackingSettings",
    "click_url",
    "open_url",
    "preferences_url",
    "prepare_email",
    "prepare_message",
    "tracking_blueprint",
    "unsubscribe_url",
]
