"""Ads audiences: segments and journey steps kept in step with ad platforms.

    person.py       what a platform may match a person on (trusted data, consent)
    normalise.py    the platforms' normalisation steps on top of contacts.py
    destination.py  the destination plugin contract (rows, batches, requests)
    meta.py, google.py, webhook.py, csvfile.py, generic.py   the built-in destinations
    builtin.py      their registration (register_destinations, register_settings)
    settings.py     `[audiences.NAME]` tables
    plugins.py      destination classes and settings from the plugin manager
    plan.py         who enters and who leaves (a round's decisions)
    sync.py         a sync round: decide, then send batches, acknowledge, retry later
    worker.py       the audience worker inside `kanal serve`
    journey.py      the journey step `audience: {add|remove: NAME}`, and its checks
    status.py       what `kanal audiences`, the admin API and the dashboard show

Destinations are not channels (DESIGN.md): a channel delivers one message to one
person; a destination keeps a set of people in step (diffs of hashed identifiers). Both
register through the one plugin manager (channels/plugins.py). docs/audiences.md
is the reference.
"""

from __future__ import annotations

from .destination import ADD, REMOVE, BatchResult, Destination, Request, Row
from .errors import (
    AudienceBusy,
    AudienceError,
    DestinationError,
    PermanentError,
    TransientError,
    UnknownAudience,
)
from .person import Person

__all__ = [
    "ADD",
    "REMOVE",
    "AudienceBusy",
    "AudienceError",
    "BatchResult",
    "Destination",
    "DestinationError",
    "PermanentError",
    "Person",
    "Request",
    "Row",
    "TransientError",
    "UnknownAudience",
]
