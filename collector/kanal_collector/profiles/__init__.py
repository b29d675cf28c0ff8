"""The single customer view: identities, profiles and segments (processor steps).

    identity.py   which profile an event belongs to; the merge rules
    state.py      a profile's traits and computed values, folded from events
    segments.py   segment definitions and their conditions
    step.py       the processor steps and the segment sweeper
    views.py      profiles as the API and CLI show them
    importer.py   `kanal import`: CSV / JSON lines into the log
    privacy.py    `kanal forget` and suppression records
    rebuild.py    `kanal profiles rebuild`
    orders.py     which copy of an order the reports count
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .privacy import forget
    from .rebuild import RebuildBusy
    from .segments import Segment, SegmentError, load_segments_file, parse_segments
    from .step import ProfilesStep, SegmentsStep, SegmentSweeper
    from .views import export_json, lookup, profile_json

_lazy = lazy_exports(__name__, {
    "forget": ".privacy",
    "RebuildBusy": ".rebuild",
    "Segment": ".segments",
    "SegmentError": ".segments",
    "load_segments_file": ".segments",
    "parse_segments": ".segments",
    "ProfilesStep": ".step",
    "SegmentsStep": ".step",
    "SegmentSweeper": ".step",
    "export_json": ".views",
    "lookup": ".views",
    "profile_json": ".views",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "ProfilesStep",
    "RebuildBusy",
    "Segment",
    "SegmentError",
    "SegmentSweeper",
    "SegmentsStep",
    "export_json",
    "forget",
    "load_segments_file",
    "lookup",
    "parse_segments",
    "profile_json",
]
