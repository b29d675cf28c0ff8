"""The processor step of on-site campaigns: who was first exposed to which arm.

Runs after the profiles step (every event already points at its profile) and keeps
`onsite_exposures` from the Shown and Held Out events of campaigns, in the processor's
transaction, so the experiments report reads one row per person instead of the log.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..profiles.step import KANAL_KEY_KIND
from ..store import onsite as store
from ..store.connection import Connection
from ..store.events import StoredEvent
from ..store.journeys import profiles_of_events
from .events import EXPOSURES


class OnsiteStep:
    """Records campaign exposures (first one per person and campaign)."""

    name = "onsite"

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Add the batch's exposures."""
        wanted = [e for e in events if e.key_kind == KANAL_KEY_KIND and e.event in EXPOSURES]
        if not wanted:
            return
        owners = profiles_of_events(conn, [e.id for e in wanted])
        rows = []
        for event in wanted:
            props = event.body.get("properties") or {}
            campaign, arm = props.get("campaign"), props.get("arm")
            pid = owners.get(event.id)
            if pid is not None and isinstance(campaign, str) and isinstance(arm, str):
                rows.append((campaign, pid, arm, min(event.timestamp, event.received_at)))
        store.add_exposures(conn, rows)
