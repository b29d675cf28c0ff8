"""The processor step that notes which sent messages were delivered, opened or clicked
(store/engagement.py), from Kanal's own events about outbox rows as they are applied."""

from __future__ import annotations

from collections.abc import Sequence

from ..profiles.step import KANAL_KEY_KIND
from ..store import engagement as store
from ..store.connection import Connection
from ..store.events import StoredEvent


class EngagementStep:
    """Keeps `outbox_engagement` current (inside the processor's transaction)."""

    name = "engagement"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Note the stage of every outbox row the batch's own events name (bots not)."""
        rows = []
        for event in events:
            if event.key_kind != KANAL_KEY_KIND:
                continue
            stage = store.STAGE_OF.get(event.event or "")
            props = event.body.get("properties")
            if stage is None or not isinstance(props, dict) or props.get("bot"):
                continue
            outbox_id = props.get("outbox_id")
            if isinstance(outbox_id, int) and not isinstance(outbox_id, bool):
                rows.append((outbox_id, stage))
        if rows:
            store.record(conn, rows)
