"""The dispatcher's `before_send` hook (messages/hooks.py) for tracked email.

    from kanal_collector.tracking.hook import email_tracking_hook
    dispatcher = Dispatcher(..., before_send=[email_tracking_hook(config, clock)])

Only the content of email channels is touched — any channel of kind email, whatever
its name (`[channels.marketing] type = "email"`), HTML, text or both; `row.kind ==
"transactional"` gets tracked links and the pixel but no List-Unsubscribe headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..channels.plugins import configured_channel_kinds
from ..clock import Clock
from ..config import Config
from ..store.connection import Connection
from .email import prepare_message
from .settings import TrackingSettings

Hook = Callable[[Connection, Any, dict[str, Any]], dict[str, Any]]


def email_tracking_hook(config: Config, clock: Clock) -> Hook:
    """A before_send hook with this config's [tracking] settings and this clock."""
    settings = TrackingSettings.from_config(config)
    base_url = settings.send_base_url(config)
    kinds = configured_channel_kinds(config)

    def hook(conn: Connection, row: Any, content: dict[str, Any]) -> dict[str, Any]:
        if kinds.get(row.channel or "email") != "email":
            return content
        html, text = content.get("html"), content.get("text")
        prepared = prepare_message(
            conn, outbox_id=row.id, profile_id=row.profile_id, message=row.message,
            journey=row.journey, html=html if isinstance(html, str) and html else None,
            text=text if isinstance(text, str) and text else None, base_url=base_url,
            now=clock.now(), channel=row.channel or "email", topic=row.topic,
            marketing=row.kind != "transactional", mailto=settings.mailto,
            keys=settings.keys)
        if prepared.html is not None:
            content["html"] = prepared.html
        if prepared.text is not None:
            content["text"] = prepared.text
        if prepared.headers:
            content["headers"] = {**dict(content.get("headers") or {}), **prepared.headers}
        return content

    return hook
