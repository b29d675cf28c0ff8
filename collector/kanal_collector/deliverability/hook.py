"""The dispatcher's `before_send` hook for email hygiene.

Marketing email gets `Precedence: bulk` and a `Feedback-ID` (Gmail's feedback loop
groups complaints by its fields: `<journey>:<message>:<kind>:<sender id>`); an email
sent through a channel that uses VERP gets its own bounce address as envelope sender
(`content["envelope_from"]`, which the dispatcher hands to the channel as metadata).
Only email content (a dict with a "subject") is touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..channels.tables import configured_channels
from ..clock import Clock
from ..config import Config
from ..messages.sending import from_domain
from ..store.connection import Connection
from ..tracking.keys import load_keys
from ..tracking.settings import TrackingSettings
from .settings import Settings, verp_channels
from .verp import bounce_address

Hook = Callable[[Connection, Any, dict[str, Any]], dict[str, Any]]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _field(value: str | None, fallback: str) -> str:
    """A Feedback-ID field: no ':' (the separator), nothing a header can't carry."""
    cleaned = _UNSAFE.sub("-", value or "").strip("-")[:60]
    return cleaned or fallback


def feedback_id(*, journey: str | None, message: str, kind: str, sender: str) -> str:
    """`journey:message:kind:sender`, each field made header-safe."""
    return ":".join((_field(journey, "none"), _field(message, "message"),
                     _field(kind, "marketing"), _field(sender, "kanal")))


def deliverability_hook(config: Config, clock: Clock) -> Hook:
    """A before_send hook with this config's `[deliverability]` settings."""
    settings = Settings.from_config(config)
    verp = verp_channels(settings, config)
    keys = TrackingSettings.from_config(config).keys
    senders = {name: settings.feedback_id or from_domain(table) or "kanal"
               for name, table in configured_channels(config).items()}

    def hook(conn: Connection, row: Any, content: dict[str, Any]) -> dict[str, Any]:
        if "subject" not in content:
            return content
        headers = dict(content.get("headers") or {})
        if row.kind != "transactional":
            headers["Precedence"] = "bulk"
            headers["Feedback-ID"] = feedback_id(
                journey=row.journey, message=row.message, kind=row.kind,
                sender=senders.get(row.channel or "", settings.feedback_id or "kanal"))
        content["headers"] = headers
        bounces = settings.bounces
        if bounces is not None and row.channel in verp and row.recipient:
            key = load_keys(conn, keys, int(clock.now() * 1000))[0]
            content["envelope_from"] = bounce_address(bounces.local, bounces.domain, key,
                                                      row.id, row.recipient)
        return content

    return hook
