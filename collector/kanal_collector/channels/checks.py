"""What a setup check found: one result per configured thing (a channel, an audience's
destination, whatever a plugin checks through the `check_setup` hook)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One check: `what` was checked (channel, destination, …), its `name`, whether it
    passed, and what was found (the problem, or a short note when it passed)."""

    what: str
    name: str
    ok: bool
    detail: str = ""
