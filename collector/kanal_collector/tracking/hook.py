"""The dispatcher's `before_send` hook (messages/hooks.py) for tracked email.

    from kanal_collector.tracking.hook import email_tracking_hook
    dispatcher = Dispatcher(..., before_send=[email_tracking_hook(config, clock)])

Only email content (a dict with "html") is touched; `row.kind == "transactional"`
gets tracked links and the pixel but no List-Unsubscribe headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..clock import Clock
from ..config import Config
from ..store.connection import Connection
from .email import prepare_email
from .settings import TrackingSettings

Hook = Callable[[Connection, Any, dict[str, Any]], dict[str, Any]]


def email_tracking_hook(config: Config, clock: Clock) -> Hook:
    """A before_send hook with this config's [tracking] settings and this clock."""
    settings = TrackingSettings.from_config(config)
    base_url = settings.send_base_url(config)

    def hook(conn: Connection, row: Any, content: dict[str, Any]) -> dict[str, Any]:
        html = content.get("html")
        if not isinstance(html, str) or (row.channel or "email") != "email":
            return content
        out, headers = prepare_email(
            conn, outbox_id=row.id, profile_id=row.profile_id, message=row.message,
            journey=row.journey, html=html, base_url=base_url, now=clock.now(),
            channel="email", topic=row.topic, marketing=row.kind != "transactional",
            mailto=settings.mailto, keys=settings.keys)
        content["html"] = out
        if headers:
            content["headers"] = {**dict(content.get("headers") or {}), **headers}
        return content

    return hook
