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

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
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

_lazy = lazy_exports(__name__, {
    "ADD": ".destination",
    "REMOVE": ".destination",
    "BatchResult": ".destination",
    "Destination": ".destination",
    "Request": ".destination",
    "Row": ".destination",
    "AudienceBusy": ".errors",
    "AudienceError": ".errors",
    "DestinationError": ".errors",
    "PermanentError": ".errors",
    "TransientError": ".errors",
    "UnknownAudience": ".errors",
    "Person": ".person",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "ADD",
    "AudienceBusy",
    "AudienceError",
    "BatchResult",
    "Destination",
    "DestinationError",
    "PermanentError",
    "Person",
    "REMOVE",
    "Request",
    "Row",
    "TransientError",
    "UnknownAudience",
]
