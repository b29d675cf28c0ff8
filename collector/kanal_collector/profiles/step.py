"""The processor steps that keep identities, profiles and segments current.

`ProfilesStep` resolves each event to a profile (identity.py) and folds it into the
profile's state (state.py); `SegmentsStep` then re-tests the profiles the batch touched
against every segment and writes "Segment Entered" / "Segment Exited" events to the log.
Both write inside the processor's transaction. `SegmentSweeper` is the worker that
re-tests time-dependent segments as time passes; `rebuild` replays the log.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..clock import Clock, SystemClock
from ..contacts import normalise_country
from ..money import order_value
from ..store import activity as activity_store
from ..store import audiences as audience_store
from ..store import identities as identity_store
from ..store import journeys as journey_store
from ..store import predict as predict_store
from ..store import privacy as privacy_store
from ..store import profiles as store
from ..store import segments as segment_store
from ..store import timeline as timeline_store
from ..store.connection import Connection
from ..store.events import EventRow, StoredEvent, append_events, event_row
from . import own_identities
from .identity import Claims, claims_of, identified_asked, resolve
from .orders import count_copies
from .segments import FALLS, ProfileView, Segment, matches
from .state import SCORES, apply_event, computed, computer, merge_states, traits_of

KANAL_KEY_KIND = "kanal"
"""key_kind of the events Kanal writes itself (segment changes, journeys' set_trait)."""
SEGMENT_ENTERED = "Segment Entered"
SEGMENT_EXITED = "Segment Exited"


def identity_hash(secret: str, kind: str, value: str) -> str:
    """The keyed hash a suppression record keeps of an identity."""
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


class _SqlGraph:
    """The identity graph of identity.resolve, on SQL, for one batch.

    `prefetch` reads every identity the batch mentions, and the state of every profile
    they point at, in a few queries; new identities and the states are written at the
    end of the batch (`flush`), each touched profile once.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.idents: dict[tuple[str, str], int | None] = {}
        self.identified: dict[int, bool] = {}
        self.states: dict[int, dict[str, Any]] = {}
        self.redirect: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.new_idents: list[tuple[str, str, int, int | None]] = []
        self.event: StoredEvent | None = None

    def prefetch(self, keys: Iterable[tuple[str, str]],
                 asked: Iterable[tuple[tuple[str, str], tuple[str, str]]] = ()) -> None:
        """Read the profiles of `keys` and their states, and for each (userId, other
        identity) of `asked` whether both profiles are identified when they differ (the
        resolver asks of the other, a merge of both), in a few statements for the batch
        (anything else asked later is read then). Only the profiles the resolver may
        ask about are checked: on a big database each is a page of the identities'
        index by profile (#18: 19 ms of every 20,000 events on top of 10M)."""
        wanted = {k for k in keys if k not in self.idents}
        if wanted:
            found = identity_store.identity_profiles(self.conn, wanted)
            for key in wanted:
                self.idents[key] = found.get(key)
            pids = {p for p in found.values() if p not in self.states}
            if pids:
                self.states.update(store.load_states(self.conn, pids))
        ask: set[int] = set()
        for user, key in asked:
            pid, mine = self.idents.get(key), self.idents.get(user)
            if pid is not None and pid != mine:  # and the userId's, which a merge asks
                ask.update(p for p in (pid, mine) if p is not None)
        ask -= self.identified.keys()
        if ask:
            marked = identity_store.identified_profiles(self.conn, ask)
            for pid in ask:
                self.identified[pid] = pid in marked

    def lookup(self, kind: str, value: str) -> int | None:
        key = (kind, value)
        if key not in self.idents:
            self.idents[key] = identity_store.identity_profile(self.conn, kind, value)
        return self.idents[key]

    def is_identified(self, profile_id: int) -> bool:
        if profile_id not in self.identified:
            self.identified[profile_id] = bool(
                identity_store.identified_profiles(self.conn, [profile_id]))
        return self.identified[profile_id]

    def create(self) -> int:
        assert self.event is not None
        pid = store.create_profile(self.conn, self.event.received_at, {})
        self.states[pid] = {}
        self.identified[pid] = False
        return pid

    def attach(self, profile_id: int, kind: str, value: str) -> None:
        self.new_idents.append((kind, value, profile_id,
                                self.event.id if self.event else None))
        self.idents[(kind, value)] = profile_id
        if kind != "anonymous_id":
            self.identified[profile_id] = True

    def state(self, profile_id: int) -> dict[str, Any]:
        if profile_id not in self.states:
            self.states.update(store.load_states(self.conn, [profile_id]))
        return self.states[profile_id]

    def merge(self, into: int, other: int, reason: str) -> None:
        assert self.event is not None
        merged = merge_states(self.state(into), self.state(other))
        # The merge moves identities in SQL: the batch's new ones must be there first.
        self._flush_identities()
        store.merge_profiles(self.conn, into, other, event_id=self.event.id, reason=reason,
                             at=self.event.received_at, state=None)
        # The person's journey runs follow them, so their later events reach those runs.
        journey_store.move_runs(self.conn, into, other, self.event.received_at)
        audience_store.move_holds(self.conn, into, other)  # and so do their ads holds
        self.states[into] = merged
        del self.states[other]
        self.dirty.discard(other)
        self.dirty.add(into)
        self.identified[into] = self.is_identified(into) or self.is_identified(other)
        self.identified.pop(other, None)
        for key, pid in self.idents.items():
            if pid == other:
                self.idents[key] = into
        self.redirect[other] = into

    def final(self, profile_id: int) -> int:
        while profile_id in self.redirect:
            profile_id = self.redirect[profile_id]
        return profile_id

    def flush_identities(self) -> None:
        """Write the batch's new identities now (before SQL that reads them)."""
        self._flush_identities()

    def _flush_identities(self) -> None:
        if self.new_idents:
            identity_store.add_identities(self.conn, self.new_idents)
            self.new_idents = []

    def flush(self, touched: Iterable[int], days: Mapping[int, str | None]) -> None:
        """Write the batch's new identities and every touched profile's state, with the
        new active days of the people in `days`."""
        self._flush_identities()
        final = {self.final(p) for p in touched} | {self.final(p) for p in self.dirty}
        store.save_states(self.conn, {p: self.states[p] for p in sorted(final)}, days)


class ProfilesStep:
    """Identity resolution and profile state, one batch of events at a time.

    `default_country` (`[profiles] default_country`) reads national phone numbers of
    people whose country isn't known (contacts.py).
    """

    name = "profiles"

    def __init__(self, *, default_country: str | None = None) -> None:
        self.default_country = default_country

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Resolve and fold the batch; drop (and delete) events of forgotten people."""
        graph = _SqlGraph(conn)
        claimed = [(e, claims_of(e, default_country=self.default_country)) for e in events]
        dropped = _suppressed_events(conn, claimed)
        keys: list[tuple[str, str]] = []
        asked: list[tuple[tuple[str, str], tuple[str, str]]] = []
        for event, claims in claimed:
            if event.key_kind == KANAL_KEY_KIND:
                keys += [(k, v) for k, v in (("user_id", event.user_id),
                                             ("anonymous_id", event.anonymous_id)) if v]
            elif event.id not in dropped:
                keys += claims.all_values
                asked += identified_asked(claims)
        graph.prefetch(keys, asked)
        timeline: list[tuple[int, int, int]] = []
        own: list[tuple[int, StoredEvent]] = []  # (profile, event) of people's own events
        touched: set[int] = set()
        for event, claims in claimed:
            if event.id in dropped:
                continue
            graph.event = event
            if event.key_kind == KANAL_KEY_KIND:
                if event.event in own_identities.IDENTITY_EVENTS:
                    # Sign-ups confirmed, push subscriptions: they change identities.
                    pid = own_identities.apply(graph, event)
                    if pid is not None:
                        pid = graph.final(pid)
                        timeline.append((pid, event.timestamp, event.id))
                        touched.add(pid)
                    continue
                own_identities.recipient_gone(graph, event)
                # Kanal's own events go on the timeline of their profile; nothing else.
                pid = _own_event_profile(graph, event)
                if pid is not None:
                    timeline.append((pid, event.timestamp, event.id))
                    if event.type == "identify":
                        # A journey's set_trait, written to the log so a rebuild keeps it.
                        apply_own_traits(graph.state(pid), event)
                        touched.add(pid)
                    elif event.origin != "server" and not _is_bot(event):
                        # Email opens, clicks and (un)subscribes change the profile: the
                        # person's own choices through Kanal's signed links and pages (or
                        # a signed SMS reply), so a subscribe counts.
                        apply_event(graph.state(pid), event, trusted=True)
                        touched.add(pid)
                continue
            if claims.needs_country:
                # A national phone number: read it in the person's country, as known
                # from the events before this one (so a rebuild reads it the same way).
                country = _profile_country(graph, claims)
                if country is not None:
                    claims = claims_of(event, country=country,
                                       default_country=self.default_country)
            pid = resolve(graph, claims)
            if pid is None:
                continue
            apply_event(graph.state(pid), event, trusted=claims.trusted,
                        invalid=dict(claims.invalid))
            touched.add(pid)
            timeline.append((pid, event.timestamp, event.id))
            own.append((pid, event))
        # The new active days are written with the profile rows: a page written anyway.
        days = _add_daily_activity(conn, [(graph.final(p), e) for p, e in own])
        graph.flush(touched, days)
        timeline_store.add_profile_events(conn, [(graph.final(p), t, e) for p, t, e in timeline])
        if dropped:
            privacy_store.delete_events(conn, dropped)


def _add_daily_activity(conn: Connection,
                        own: Sequence[tuple[int, StoredEvent]]) -> dict[int, str | None]:
    """The batch's share of the overview's daily aggregates: the days each person was
    active, and track events (count, order value) per day and name. Of the copies of an
    order only the one that counts is there (orders.py). Returns the people's new
    profiles.active_days, for the caller to write with their profile rows."""
    if not own:
        return {}
    counted = count_copies(conn, [e for _, e in own])
    tracks: dict[tuple[int, str], tuple[int, float]] = {}
    for _, event in own:
        if event.type == "track" and event.event is not None and event.id not in counted.skip:
            key = (event.timestamp // activity_store.DAY_MS, event.event)
            n, revenue = tracks.get(key, (0, 0.0))
            tracks[key] = (n + 1, revenue + order_value(event.body.get("properties")))
    for copy in counted.replaced:  # a trusted copy now counts instead
        key = (copy.timestamp // activity_store.DAY_MS, copy.event)
        n, revenue = tracks.get(key, (0, 0.0))
        tracks[key] = (n - 1, revenue - copy.value)
    activity_store.add_track_counts(conn, tracks)
    return activity_store.add_active_days(
        conn, {(e.timestamp // activity_store.DAY_MS, pid) for pid, e in own})


def apply_own_traits(state: dict[str, Any], event: StoredEvent) -> None:
    """Fold the traits of one of Kanal's own identify events (a journey's set_trait).

    Only the traits: Kanal setting a trait is not the person being seen, so first and
    last seen and the origin counts stay as they were (a win-back journey that tags a
    silent customer must not make them look active). Folding the same event twice
    changes nothing, so the journey step may fold it at once and the profiles step again
    when it reaches the event in the log.
    """
    kept: dict[str, Any] = {k: state[k] for k in ("first", "last") if k in state}
    if "origins" in state:
        kept["origins"] = dict(state["origins"])  # apply_event counts into it in place
    apply_event(state, event, trusted=True)
    for key in ("first", "last", "origins"):
        if key in kept:
            state[key] = kept[key]
        else:
            state.pop(key, None)


def _profile_country(graph: _SqlGraph, claims: Claims) -> str | None:
    """The country of the profile an event's userId (else anonymousId) points at."""
    for kind, value in (("user_id", claims.user_id), ("anonymous_id", claims.anonymous_id)):
        pid = graph.lookup(kind, value) if value else None
        if pid is not None:
            return normalise_country(computed(graph.state(pid)).get("country"))
    return None


def _own_event_profile(graph: _SqlGraph, event: StoredEvent) -> int | None:
    for kind, value in (("user_id", event.user_id), ("anonymous_id", event.anonymous_id)):
        if value:
            found = graph.lookup(kind, value)
            if found is not None:
                return found
    # A person known only by email or phone (an imported customer list): Kanal's own
    # segment and score events name the profile (following merges since).
    props = event.body.get("properties")
    pid = props.get("profileId") if isinstance(props, dict) else None
    if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
        pid = graph.final(pid)
        if store.profile_row(graph.conn, pid) is not None:
            return pid
        return store.merged_into(graph.conn, pid)
    return None


def _suppressed_events(conn: Connection,
                       claimed: Sequence[tuple[StoredEvent, Claims]]) -> set[int]:
    if not privacy_store.any_suppressions(conn):
        return set()
    secret = privacy_store.suppression_secret(conn)
    hashed: dict[int, list[str]] = {}
    for event, claims in claimed:
        hashed[event.id] = [identity_hash(secret, k, v) for k, v in claims.all_values]
    found = privacy_store.suppressed(conn, (h for hs in hashed.values() for h in hs))
    return {eid for eid, hs in hashed.items() if found.intersection(hs)}


# -- segments ---------------------------------------------------------------------------

def load_definitions(conn: Connection) -> list[Segment]:
    """The segments stored by `kanal segments apply`."""
    return [Segment(name, definition) for name, _, definition
            in segment_store.segment_definitions(conn)]


def profile_view(conn: Connection, profile_id: int,
                 state: dict[str, Any]) -> ProfileView:
    """What segment conditions read about a profile."""

    def events(name: str, since: int) -> Any:
        return timeline_store.profile_events_since(conn, profile_id, name, since)

    scores = predict_store.computed_scores(conn, [profile_id]).get(profile_id)
    return ProfileView(traits_of(state), computed(state, scores), events)


def evaluate(conn: Connection, segments: Sequence[Segment], profile_ids: Iterable[int],
             now_ms: int, *, trigger: str | None) -> int:
    """Re-test profiles against segments and record changes; returns how many changed.

    With a `trigger` (what caused the evaluation, part of the message ids), entering
    and leaving are also written to the log as events; without one (a rebuild) they are
    not, since the log already holds them.
    """
    changed = membership_changes(conn, segments, profile_ids, now_ms)
    if not changed:
        return 0
    segment_store.set_memberships(conn, changed, now_ms)
    if trigger is not None:
        source = store.first_source(conn)
        if source is not None:
            idents = identity_store.profiles_identities(conn, {pid for _, pid, _ in changed})
            append_events(conn, [
                _segment_event(idents[pid], source, name, pid, member, now_ms, trigger)
                for name, pid, member in changed])
    return len(changed)


def membership_changes(conn: Connection, segments: Sequence[Segment],
                       profile_ids: Iterable[int], now_ms: int,
                       ) -> list[tuple[str, int, bool]]:
    """(segment, profile, now a member?) for each membership that re-testing the
    profiles against the segments would change; reads only."""
    ids = sorted(set(profile_ids))
    if not segments or not ids:
        return []
    states = store.load_states(conn, ids)
    current = segment_store.memberships(conn, states)
    pids = sorted(states)
    # Only the values the segments read are worked out (most read one or two of them).
    keys = set().union(*(s.computed_keys() for s in segments))
    values = computer(keys)
    reads_traits = any(s.reads_traits() for s in segments)
    reads_events = any(s.event_names() for s in segments)
    # Event conditions read (or count) the timelines of all the profiles at once, the
    # first time any profile asks for an (event, since) pair.
    fetched: dict[tuple[str, int], dict[int, list[dict[str, Any]]]] = {}
    counted: dict[tuple[str, int], dict[int, int]] = {}

    def reader(pid: int) -> Any:
        def events(name: str, since: int) -> Any:
            key = (name, since)
            if key not in fetched:
                fetched[key] = timeline_store.profiles_events_since(conn, pids, name, since)
            return iter(fetched[key][pid])
        return events

    def counter(pid: int) -> Any:
        def count(name: str, since: int) -> int:
            key = (name, since)
            if key not in counted:
                counted[key] = timeline_store.profiles_event_counts(conn, pids, name, since)
            return counted[key].get(pid, 0)
        return count

    scores = predict_store.computed_scores(conn, pids) if keys.intersection(SCORES) else {}
    changed: list[tuple[str, int, bool]] = []
    for pid in pids:
        state = states[pid]
        view = ProfileView(traits_of(state) if reads_traits else {},
                           values(state, scores.get(pid)),
                           reader(pid) if reads_events else _no_events,
                           counter(pid) if reads_events else None)
        for segment in segments:
            member = matches(segment.definition, view, now_ms)
            if member != (segment.name in current[pid]):
                changed.append((segment.name, pid, member))
    return changed


def _no_events(name: str, since: int) -> Any:
    """The events of segments that read none."""
    return iter(())


def _segment_event(idents: Sequence[tuple[str, str]], source: int, segment: str,
                   profile_id: int, entered: bool, now_ms: int, trigger: str) -> EventRow:
    user_id = next((v for k, v in idents if k == "user_id"), None)
    anonymous_id = next((v for k, v in idents if k == "anonymous_id"), None)
    name = SEGMENT_ENTERED if entered else SEGMENT_EXITED
    message_id = f"kanal-seg-{'in' if entered else 'out'}-{profile_id}-{segment}-{trigger}"
    iso = _iso(now_ms)
    body: dict[str, Any] = {
        "type": "track", "event": name, "messageId": message_id,
        "properties": {"segment": segment, "profileId": profile_id},
        "timestamp": iso, "receivedAt": iso, "context": {"library": {"name": "kanal"}},
    }
    if user_id:
        body["userId"] = user_id
    if anonymous_id:
        body["anonymousId"] = anonymous_id
    return event_row(source, message_id, "track", name, user_id, anonymous_id, "server",
                     KANAL_KEY_KIND, 1, now_ms, now_ms, body, _dumps)


def _dumps(body: dict[str, Any]) -> str:
    """The JSON of a body as this writer has always stored it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _iso(ms: int) -> str:
    from ..clock import utc_iso

    return utc_iso(ms / 1000)


class SegmentsStep:
    """Keeps segment membership current for the profiles a batch touched."""

    name = "segments"

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Re-test every profile the batch touched; write entered/exited events."""
        segments = load_definitions(conn)
        if not segments:
            return
        counted = set().union(*(s.event_names() for s in segments))
        ids = [e.id for e in events if _may_move(e, counted)]
        touched = timeline_store.profiles_of_events(conn, ids)
        evaluate(conn, segments, touched, int(self.clock.now() * 1000),
                 trigger=f"e{events[-1].id}")


def _may_move(event: StoredEvent, counted: set[str]) -> bool:
    """Whether an event may change its person's segments: every event of theirs; of
    Kanal's own, those that change the profile (ProfilesStep: a journey's set_trait, the
    person's opens, clicks and (un)subscribes through Kanal's links and pages, sign-ups
    and push subscriptions) or that a segment counts. Not the deliveries or Kanal's
    segment events, unless a segment counts them: a sweep re-tests only the members of a
    segment that time can only shrink, so whatever can bring someone in is re-tested
    here."""
    if event.key_kind != KANAL_KEY_KIND or event.event in counted:
        return True
    return (event.type == "identify" or event.origin != "server"
            or event.event in own_identities.IDENTITY_EVENTS)


def sweep(db_conn: Connection, now_ms: int, *, segments: Sequence[Segment] | None = None,
          trigger: str | None, chunk: int = 500, only_time_dependent: bool = True,
          members_only: bool = True, since_ms: int | None = None,
          progress: Callable[[int], None] | None = None) -> int:
    """Re-test all profiles against (time-dependent) segments, `chunk` at a time; how
    many memberships changed.

    A chunk is tested outside any transaction (reads only). Only the profiles whose
    membership would change are tested again, in a write transaction, and their changes
    written. Most of a sweep changes nothing, so it holds the write lock for those few:
    holding it for every chunk, one transaction right after the other, the sweep of a
    big database kept the other writers out (SQLite's waiting connections retry after
    sleeps of up to 100 ms and found the lock taken again each time; on 500,000
    profiles, a dashboard sign-in and the recommendations failed with "database is
    locked" after 10 s). The second test reads the profiles afresh, so what the
    processor changed in between is not undone; a profile that changed since the first
    test is the processor's to re-test, as for every batch it applies. `progress` is
    called with the number of profiles of each chunk once it is done.

    With `only_time_dependent` and `members_only` (the sweeper), a segment that time
    alone can only shrink (`Segment.only_loses_with_time`: "viewed 3 times in 7 days")
    has only its members re-tested: nobody can come in without an event, and the
    processor re-tests the people of every event that may change a segment
    (`_may_move`). With `since_ms` too (the time of the last sweep, which left every
    membership right as of then), a segment time brings people into only through their
    last seen (`Segment.rises_through`: "not seen for 60 days") is tested on those whose
    last seen crossed one of its windows since then, and on its members when time can
    also take them out. The others are tested on every profile."""
    if segments is None:
        segments = load_definitions(db_conn)
    if only_time_dependent:
        segments = [s for s in segments if s.time_dependent]
    incremental = only_time_dependent and members_only
    chained = incremental and since_ms is not None and since_ms <= now_ms
    members: list[Segment] = []  # tested on their members
    crossed: list[tuple[Segment, list[int]]] = []  # on those whose last seen crossed
    everyone: list[Segment] = []
    for segment in segments:
        rises = segment.rises_through() if chained else None
        if incremental and segment.only_loses_with_time:
            # Time alone can only take members out: all its time tests are `within`.
            members.append(segment)
        elif rises is not None and since_ms is not None:
            crossed.append((segment, _crossed(db_conn, rises, since_ms, now_ms)))
            if FALLS in segment.moves_with_time:
                members.append(segment)
        else:
            everyone.append(segment)
    changes = 0
    if everyone:
        changes += _sweep_chunks(
            db_conn, everyone, now_ms, trigger, progress,
            lambda after: store.profile_ids(db_conn, after=after, limit=chunk))
    for segment in members:
        changes += _sweep_chunks(db_conn, [segment], now_ms, trigger, progress,
                                 _members(db_conn, segment.name, chunk))
    for segment, ids in crossed:
        changes += _sweep_chunks(db_conn, [segment], now_ms, trigger, progress,
                                 _after_in(ids, chunk))
    return changes


def _crossed(conn: Connection, rises: Sequence[tuple[str, int]], since_ms: int,
             now_ms: int) -> list[int]:
    """The profiles whose value in a column crossed one of these windows between two
    sweeps: a test of a value v and a window w turns at v + w + 1 ms, so those with v from
    since - w to now - w (a second wider before: what the last sweep tested may have
    been read a moment before it)."""
    ids: set[int] = set()
    for column, window in rises:
        ids.update(store.profiles_seen_between(conn, column, since_ms - window - 1000,
                                               now_ms - window))
    return sorted(ids)


def _after_in(ids: Sequence[int], chunk: int) -> Callable[[int], list[int]]:
    """The next `chunk` of the ascending `ids` after a profile id."""
    def after(pid: int) -> list[int]:
        start = bisect.bisect_right(ids, pid)
        return list(ids[start:start + chunk])
    return after


def _members(conn: Connection, segment: str, chunk: int) -> Callable[[int], list[int]]:
    """The next `chunk` members of a segment after a profile id."""
    def after(pid: int) -> list[int]:
        return [p for p, _ in segment_store.segment_members(conn, segment, after=pid,
                                                            limit=chunk)]
    return after


def _sweep_chunks(db_conn: Connection, segments: Sequence[Segment], now_ms: int,
                  trigger: str | None, progress: Callable[[int], None] | None,
                  next_ids: Callable[[int], list[int]]) -> int:
    """`sweep` of the profiles `next_ids(after)` gives, a chunk at a time."""
    from ..store.db import transaction

    after = 0
    changes = 0
    while ids := next_ids(after):
        moving = {pid for _, pid, _ in membership_changes(db_conn, segments, ids, now_ms)}
        if moving:
            with transaction(db_conn) as conn:
                changes += evaluate(conn, segments, moving, now_ms, trigger=trigger)
        after = ids[-1]
        if progress is not None:
            progress(len(ids))
    return changes


def record_sizes(db_conn: Connection, now_ms: int) -> int:
    """Note today's member count of every segment, once a day (the dashboard's Segments
    page draws them); how many were noted."""
    from ..store.db import transaction

    with transaction(db_conn) as conn:
        return segment_store.record_day(conn, now_ms)


class SegmentSweeper:
    """A worker: every `interval` seconds of the injected clock, re-test time-dependent
    segments ("viewed 3 times in 7 days" ends by itself). Its first sweep tests every
    profile against them; the later ones test only whom time may have moved since the
    last (`sweep`), the first having set right whatever a process before this one left
    (one that stopped between an event and its sweep)."""

    name = "segment-sweeper"

    def __init__(self, db: Any, clock: Clock, *, interval: float = 600.0) -> None:
        self.db = db
        self.clock = clock
        self.interval = interval
        self.next_due = 0.0
        self._last: int | None = None
        """The time of the last sweep that went through (ms)."""
        self._conn: Connection | None = None

    def run_once(self) -> int:
        """Sweep when due; return 0 when there was nothing to do."""
        now = self.clock.now()
        if now < self.next_due:
            return 0
        self.next_due = now + self.interval
        if self._conn is None:
            self._conn = self.db.connect()
        now_ms = int(now * 1000)
        sweep(self._conn, now_ms, trigger=f"s{now_ms}", members_only=self._last is not None,
              since_ms=self._last)
        self._last = now_ms
        record_sizes(self._conn, now_ms)
        return 0  # one sweep per interval: the supervisor waits for the next poll

    def close(self) -> None:
        """Close the sweeper's connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _is_bot(event: StoredEvent) -> bool:
    """Opens and clicks flagged as bots, scanners or proxies change nothing."""
    props = event.body.get("properties")
    return isinstance(props, dict) and props.get("bot") is True
