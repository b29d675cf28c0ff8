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

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
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

_lazy = lazy_exports(__name__, {
    "click_url": ".email",
    "open_url": ".email",
    "preferences_url": ".email",
    "prepare_email": ".email",
    "prepare_message": ".email",
    "unsubscribe_url": ".email",
    "tracking_blueprint": ".routes",
    "TrackingSettings": ".settings",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


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
