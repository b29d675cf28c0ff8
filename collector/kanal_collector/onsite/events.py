"""What happens on the shop's pages, as Kanal's own events in the log.

The browser reports what it did with a message the pull handed it (shown, clicked,
dismissed, or held out of a campaign's experiment) to `/onsite/event`, with the signed
ticket the pull gave it; the server checks the ticket and writes the event itself (key
kind `kanal`, origin `web`), so funnels, experiments and attribution count events whose
campaign, arm and outbox row are the ones Kanal chose. The message id is derived from the
ticket and what happened, so a repeated report adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ..own_events import own_event
from ..store.events import EventRow

SHOWN = "On-site Message Shown"
CLICKED = "On-site Message Clicked"
DISMISSED = "On-site Message Dismissed"
HELD_OUT = "On-site Message Held Out"
FORM_SUBMITTED = "Sign-up Form Submitted"
ACTIONS = {"shown": SHOWN, "clicked": CLICKED, "dismissed": DISMISSED, "held_out": HELD_OUT}
"""What the snippet may report → the event's name."""
EXPOSURES = frozenset({SHOWN, HELD_OUT})
"""The events that put a person into a campaign's experiment."""
ORIGIN = "web"


def onsite_event(name: str, *, ticket: str, properties: Mapping[str, Any],
                 user_id: str | None, anonymous_id: str | None, source_id: int,
                 now_ms: int, page_url: str | None = None) -> EventRow:
    """One on-site event; its message id is a hash of the ticket and the name."""
    digest = hashlib.sha256(f"{ticket}\0{name}".encode()).hexdigest()[:32]
    context: dict[str, Any] = {"library": {"name": "kanal"}}
    if page_url:
        context["page"] = {"url": page_url[:2000]}
    return own_event(name=name, message_id=f"kanal-onsite-{digest}", origin=ORIGIN,
                     properties={k: v for k, v in properties.items() if v is not None},
                     user_id=user_id, anonymous_id=anonymous_id, source_id=source_id,
                     now_ms=now_ms, context=context)
