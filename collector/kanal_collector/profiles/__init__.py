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

from .privacy import forget
from .rebuild import RebuildBusy, rebuild
from .segments import Segment, SegmentError, load_segments_file, parse_segments
from .step import ProfilesStep, SegmentsStep, SegmentSweeper
from .views import export_json, lookup, profile_json

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
    "rebuild",
]
