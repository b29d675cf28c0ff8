"""A round's decisions: who enters the audience and who leaves, as row changes.

Who should be in: the segment's members and the people journey steps hold, who granted
consent category `advertising` and have something the destination matches on. Each of
them becomes a row of hashed identifiers (`Destination.row`), keyed by the row's
SHA-256. The decisions compare that with what the destination was told:

- a new row is `adding`; a row being removed that is wanted again is `adding` again;
- a row of someone no longer wanted, or whose identifiers changed (a new row replaces
  it), is `removing` (a refused row is just deleted: the platform never took it);
- rows already added stay as they are: a member is added once.

Only people who may have changed are looked at again: new members, and those whose
timeline got an event since the last round (an identify with a new email, a consent
change, a merge all arrive as events); the first round looks at everyone. People left
out (no consent, no email or phone) are remembered with the reason (`audience_skips`),
so they aren't looked at again until an event of theirs arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from ..store import audience_syncs as syncs
from ..store import audiences as store
from ..store import identities as identity_store
from ..store import profiles as profile_store
from ..store.audiences import ADDED, ADDING, REJECTED, REMOVING, Change
from ..store.connection import Connection
from ..store.cursors import get_position
from ..workers import PROCESSOR_CURSOR
from .destination import Destination
from .person import has_consent, person_of
from .settings import AudienceSettings

NO_CONSENT = "no consent"
NOTHING_TO_MATCH = "no email or phone"
_CHUNK = 1000


@dataclass
class Plan:
    """What a round decided, before it is written."""

    audience: str
    mark: int
    """The processor's position the round saw: the next round looks at later changes."""
    changes: list[Change] = field(default_factory=list)
    skips: dict[int, str | None] = field(default_factory=dict)
    considered: int = 0

    @property
    def entering(self) -> int:
        """Rows that will be added."""
        return sum(1 for c in self.changes if c.state == ADDING)

    @property
    def leaving(self) -> int:
        """Rows that will be removed."""
        return sum(1 for c in self.changes if c.state == REMOVING)

    def skipped(self, reason: str) -> int:
        """People newly left out for `reason`."""
        return sum(1 for why in self.skips.values() if why == reason)


def identifiers_key(settings: AudienceSettings) -> str:
    """What the rows are made of (kept with the audience: a change remakes every row)."""
    return ",".join(settings.identifiers)


def encode(row: object) -> tuple[str, str]:
    """(row key, payload): the row as compact JSON with sorted keys, and its SHA-256."""
    payload = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest(), payload.decode()


def _rows_of(conn: Connection, settings: AudienceSettings, destination: Destination,
             profile_ids: Sequence[int]) -> dict[int, tuple[str, str] | str]:
    """Per person: (row key, payload), or why they are left out."""
    out: dict[int, tuple[str, str] | str] = {}
    for start in range(0, len(profile_ids), _CHUNK):
        chunk = profile_ids[start:start + _CHUNK]
        states = profile_store.load_states(conn, chunk)
        identities = identity_store.profiles_identities(conn, states)
        for pid in chunk:
            state = states.get(pid)
            if state is None:
                out[pid] = NOTHING_TO_MATCH  # forgotten or merged away meanwhile
                continue
            if not has_consent(state):
                out[pid] = NO_CONSENT
                continue
            person = person_of(pid, state, identities.get(pid, [])).limited(
                settings.identifiers)
            row = destination.row(person) if person.matchable else None
            out[pid] = NOTHING_TO_MATCH if row is None else encode(row)
    return out


def make_plan(conn: Connection, settings: AudienceSettings,
              destination: Destination) -> Plan:
    """Decide a round (reads only; `AudienceSync.open_round` writes the decisions)."""
    name, segment = settings.name, settings.segment
    position = get_position(conn, PROCESSOR_CURSOR)
    told = syncs.sync_state(conn, name)
    mark = int(told["mark"] or 0)
    if told["identifiers"] not in (None, identifiers_key(settings)):
        mark = 0  # other identifiers make other rows: everyone is looked at again
    if mark == 0:
        candidates = store.wanted_ids(conn, name, segment)
    else:
        candidates = (store.new_wanted(conn, name, segment)
                      | store.touched_wanted(conn, name, segment, mark, position))
    leaving = store.unwanted(conn, name, segment) - candidates
    found = _rows_of(conn, settings, destination, sorted(candidates))
    by_profile: dict[int, list[tuple[str, str]]] = {}
    for key, pid, state in store.rows_of_profiles(conn, name, candidates | leaving):
        if pid is not None:
            by_profile.setdefault(pid, []).append((key, state))
    keep = {pid: r[0] for pid, r in found.items() if not isinstance(r, str)}
    by_key = store.rows_by_key(conn, name, keep.values())
    skipped = store.skipped_among(conn, name, candidates | leaving)

    final: dict[str, Change] = {}
    # First who leaves (or whose row changed), then who is wanted: a row wanted by one
    # profile and let go by another (an email that moved) ends up wanted.
    for pid in sorted(by_profile):
        for key, state in by_profile[pid]:
            if key == keep.get(pid):
                continue
            if state in (ADDING, ADDED):
                final[key] = Change(key, pid, None, REMOVING)
            elif state == REJECTED:
                final[key] = Change(key, pid, None, None)
    skips: dict[int, str | None] = {pid: None for pid in skipped & leaving}
    for pid, result in found.items():
        if isinstance(result, str):
            skips[pid] = result
            continue
        if pid in skipped:
            skips[pid] = None
        key, payload = result
        owner, state = by_key.get(key, (None, ""))
        if state in ("", REMOVING):
            final[key] = Change(key, pid, payload, ADDING)
        elif owner != pid:  # the same row, now another profile's (a merge, a rebuild)
            final[key] = Change(key, pid, None, state)
        else:
            final.pop(key, None)
    return Plan(name, position, list(final.values()), skips, len(candidates))
