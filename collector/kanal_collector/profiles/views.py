"""Profiles as the admin API, the CLI and exports show them."""

from __future__ import annotations

from typing import Any

from ..contacts import normalise_email, normalise_phone
from ..store import audiences as audience_store
from ..store import identities as identity_store
from ..store import predict as predict_store
from ..store import profiles as store
from ..store import segments as segment_store
from ..store import timeline as timeline_store
from ..store.connection import Connection
from ..store.events import StoredEvent, count_events
from .state import claimed_of, computed, invalid_of, trait_times, traits_of


def lookup(conn: Connection, value: str, kind: str | None = None) -> int | None:
    """The profile of any identity: a userId, email, phone, anonymousId or push token."""
    if kind is not None and kind not in identity_store.KINDS:
        raise ValueError(f"kind must be one of {', '.join(identity_store.KINDS)}, not {kind!r}")
    candidates = [value.strip()]
    email = normalise_email(value)
    phone = normalise_phone(value)
    for kind_, normal in (("email", email), ("phone", phone)):
        if normal and (kind is None or kind == kind_):
            found = identity_store.identity_profile(conn, kind_, normal)
            if found is not None:
                return found
    for candidate in candidates:
        found = identity_store.find_profile(conn, candidate, kind)
        if found is not None:
            return found
    if value.strip().isdigit() and kind is None:
        # A bare number may be a profile id (or one merged away since).
        pid = int(value)
        if store.profile_row(conn, pid) is not None:
            return pid
        return store.merged_into(conn, pid)
    return None


def search(conn: Connection, query: str, limit: int) -> tuple[list[int], bool]:
    """Profiles whose identity (userId, email, phone, anonymousId, …) is `query` or starts
    with it, the exact match first, then by last seen; and whether more identities start
    with it than a search reads (store/identities.py SEARCH_MATCHES: typing more finds
    the rest)."""
    query = query.strip()
    if not query:
        return [], False
    found: list[int] = []
    exact = lookup(conn, query)
    if exact is not None:
        found.append(exact)
    capped = False
    for prefix in dict.fromkeys((query, query.lower())):
        ids, more = identity_store.search_identities(conn, prefix, limit)
        found += [i for i in ids if i not in found]
        capped = capped or more
    return found[:limit], capped


def profile_json(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    """Everything shown about a profile (not its events)."""
    row = store.profile_row(conn, profile_id)
    if row is None:
        return None
    state = row["state"]
    return {
        "id": profile_id,
        "createdAt": row["created_at"],
        "identities": [{"kind": k, "value": v}
                       for k, v in identity_store.profile_identities(conn, profile_id)],
        "traits": traits_of(state),
        "traitTimes": trait_times(state),
        "claimed": claimed_of(state),
        "invalid": invalid_of(state),
        "computed": computed(state, predict_store.computed_scores(conn, [profile_id])
                             .get(profile_id)),
        "segments": [{"name": n, "enteredAt": t}
                     for n, t in segment_store.profile_segments(conn, profile_id)],
        "merges": store.profile_merges(conn, profile_id),
    }


def timeline_json(event: StoredEvent) -> dict[str, Any]:
    """One timeline entry."""
    body = event.body
    return {
        "id": event.id, "timestamp": event.timestamp, "origin": event.origin,
        "type": event.type, "event": event.event, "userId": event.user_id,
        "anonymousId": event.anonymous_id, "verified": event.verified,
        "properties": body.get("properties") or {},
        "traits": body.get("traits") or {},
    }


def export_json(conn: Connection, profile_id: int) -> dict[str, Any] | None:
    """Everything held about a person: profile, identities, merges, segments, events,
    and their rows in ads audiences (the hashes sent) and journey holds."""
    profile = profile_json(conn, profile_id)
    if profile is None:
        return None
    events = timeline_store.timeline(conn, profile_id, limit=max(count_events(conn), 1))
    profile["state"] = store.profile_row(conn, profile_id)["state"]  # type: ignore[index]
    profile["events"] = [
        {"id": e.id, "origin": e.origin, "keyKind": e.key_kind, "verified": e.verified,
         "timestamp": e.timestamp, "receivedAt": e.received_at, "body": e.body}
        for e in reversed(events)
    ]
    profile["audiences"] = {"rows": audience_store.profile_rows(conn, profile_id),
                            "holds": audience_store.profile_holds(conn, profile_id)}
    return profile


def snapshot(conn: Connection) -> list[dict[str, Any]]:
    """Every profile in a form independent of profile ids (rebuild == live tests)."""
    out: list[dict[str, Any]] = []
    after = 0
    while ids := store.profile_ids(conn, after=after, limit=1000):
        states = store.load_states(conn, ids)
        for pid in ids:
            timeline_ids = [e.id for e in timeline_store.timeline(conn, pid, limit=10**9)]
            out.append({
                "identities": identity_store.profile_identities(conn, pid),
                "state": states[pid],
                "segments": [n for n, _ in segment_store.profile_segments(conn, pid)],
                "events": sorted(timeline_ids),
            })
        after = ids[-1]
    out.sort(key=lambda p: p["identities"])
    return out
