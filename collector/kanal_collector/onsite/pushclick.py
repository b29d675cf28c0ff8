"""Clicks on web push notifications: the URL a notification opens is a tracked link.

A `before_send` hook (messages/hooks.py) for rows of `webpush` channels: the message's
`push.data.url` is recorded for the outbox row (like an email's links) and replaced by
the collector's signed click URL (`/c/<token>`). Kanal's service worker opens that URL
when the notification is clicked; the click route records "Push Notification Clicked"
and redirects to the recorded URL only, so nothing in a request can choose where it
goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..clock import Clock
from ..config import Config
from ..store import tracking as tracking_store
from ..store.connection import Connection
from ..tracking.email import click_url
from ..tracking.keys import load_keys
from ..tracking.settings import TrackingSettings

Hook = Callable[[Connection, Any, dict[str, Any]], dict[str, Any]]


def webpush_channels(config: Config) -> frozenset[str]:
    """The names of the configured channels of type webpush."""
    return frozenset(str(name) for name, table in config.section("channels").items()
                     if isinstance(table, dict) and str(table.get("type", name)) == "webpush")


def webpush_click_hook(config: Config, clock: Clock) -> Hook:
    """A before_send hook tracking the URL a web push notification opens."""
    settings = TrackingSettings.from_config(config)
    base_url = settings.send_base_url(config)
    names = webpush_channels(config)

    def hook(conn: Connection, row: Any, content: dict[str, Any]) -> dict[str, Any]:
        data = content.get("data")
        if row.channel not in names or not isinstance(data, dict) or not data.get("url"):
            return content
        url = str(data["url"])
        if not url.startswith(("http://", "https://")):
            return content
        now_ms = int(clock.now() * 1000)
        tracking_store.record_send(conn, tracking_store.SendInfo(
            row.id, row.profile_id, row.message, row.journey, row.channel, row.topic,
            now_ms), [url])
        key = load_keys(conn, settings.keys, now_ms)[0]
        content["data"] = {**data, "url": click_url(base_url, key, row.id, 0)}
        return content

    return hook
