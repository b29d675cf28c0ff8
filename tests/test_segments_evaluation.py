"""Segments tested many profiles at a time (`kanal segments apply`, the sweep, the
processor's batches): only the computed values the segments read are worked out, and
event conditions without `where` are counted in the database. Both must give what
testing one profile at a time gives, reading every value and every event body."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from profiles_util import Log

from kanal_collector.profiles import step
from kanal_collector.profiles.segments import matches, parse_segments
from kanal_collector.profiles.state import SCORES, computed
from kanal_collector.store import profiles as profile_store
from kanal_collector.store import timeline as timeline_store

DAY = 86_400_000
CHANNELS = ("email", "sms", "push", "app", "web")


def random_state(rnd: random.Random) -> dict[str, Any]:
    """A profile state with some of each part of its layout (profiles/state.py)."""
    def stamp() -> int:
        return rnd.randrange(10**12, 2 * 10**12)

    def some(names: tuple[str, ...]) -> list[str]:
        return rnd.sample(names, rnd.randint(0, len(names)))

    state: dict[str, Any] = {}
    if rnd.random() < 0.8:
        state["first"], state["last"] = sorted((stamp(), stamp()))
    state["orders"] = {f"o{i}": [round(rnd.uniform(0, 300), 2), stamp(), rnd.randint(0, 1), i]
                       for i in range(rnd.randint(0, 4))}
    state["origins"] = {o: rnd.randint(1, 9) for o in some(("web", "app", "server"))}
    state["eng"] = {c: rnd.randint(0, 5) for c in some(CHANNELS)}
    state["eng_at"] = {c: stamp() for c in some(CHANNELS)}
    for part in ("loc", "inf"):
        state[part] = {n: [rnd.choice(["sv", "SE", "Europe/Stockholm", "de"]), stamp(), 1]
                       for n in some(("language", "timezone", "country"))}
    state["subs"] = {k: [rnd.random() < 0.5, stamp(), 2]
                     for k in some(("email", "email/news", "sms", "push/offers"))}
    state["consent"] = {k: [rnd.random() < 0.5, stamp(), 3]
                        for k in some(("marketing", "analytics"))}
    for key in [k for k in state if rnd.random() < 0.2]:
        del state[key]  # a part a person never had
    return state


@pytest.mark.parametrize("seed", range(4))
def test_the_values_asked_for_are_those_of_the_whole_answer(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(300):
        state = random_state(rnd)
        scores = ({name: rnd.choice([None, 0.25, "loyal", 3]) for name in SCORES}
                  if rnd.random() < 0.5 else None)
        whole = computed(state, scores)
        asked = rnd.sample(sorted(whole), rnd.randint(0, len(whole)))
        assert computed(state, scores, only=asked) == {k: whole[k] for k in asked}


def test_an_unknown_computed_value_is_refused() -> None:
    with pytest.raises(KeyError, match="revenu"):
        computed({}, only=["revenu"])


SEGMENTS = """
segments:
  - name: viewed-twice-in-3-days
    all:
      - event: Product Viewed
        min: 2
        within: 3d
  - name: viewed-once-ever
    all:
      - event: Product Viewed
        max: 1
  - name: viewed-two-or-three-in-5-days
    all:
      - event: Product Viewed
        min: 2
        max: 3
        within: 5d
  - name: never-viewed
    all:
      - not:
          event: Product Viewed
  - name: two-orders
    all:
      - event: Order Completed
        min: 2
  - name: recent-viewer-who-spent
    all:
      - event: Product Viewed
        within: 1d
      - computed: revenue
        gt: 50
  - name: shoe-viewers
    all:
      - event: Product Viewed
        within: 7d
        where: {category: shoes}
  - name: swedes-ok-to-email
    any:
      - trait: country
        eq: SE
      - subscribed: email
"""


@pytest.mark.parametrize("seed", range(3))
def test_counting_in_the_database_gives_the_memberships_of_reading_every_event(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(seed)
    log = Log(tmp_path / "k.db")
    try:
        now = int(log.clock.now() * 1000)
        for n in range(40):
            user = f"u{n}"
            if rnd.random() < 0.3:
                log.add("identify", user_id=user, trusted=True, ts=now - 9 * DAY,
                        traits={"country": rnd.choice(["SE", "DE"])})
            for _ in range(rnd.randint(0, 5)):
                log.add("track", event="Product Viewed", user_id=user,
                        ts=now - rnd.randrange(8 * DAY),
                        properties={"category": rnd.choice(["shoes", "hats"])})
            if rnd.random() < 0.2:  # a page of that name is not a track event
                log.add("page", event="Product Viewed", user_id=user,
                        ts=now - rnd.randrange(DAY))
            for order in range(rnd.randint(0, 2)):
                copies = rnd.randint(1, 2)  # a second copy of an order is not an order
                for copy in range(copies):
                    log.add("track", event="Order Completed", user_id=user,
                            trusted=copy == 0, ts=now - rnd.randrange(8 * DAY),
                            properties={"order_id": f"{user}-{order}",
                                        "revenue": rnd.choice([20, 40, 80])})
            if rnd.random() < 0.3:
                log.add("track", event="Unsubscribed" if rnd.random() < 0.5 else "Subscribed",
                        user_id=user, trusted=True, ts=now - DAY)
        log.process()
        segments = parse_segments(yaml.safe_load(SEGMENTS))
        conn = log.conn
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM profiles")]
        counts: list[str] = []
        real_counts = timeline_store.profiles_event_counts

        def counting(conn: Any, pids: Any, name: str, since: int) -> dict[int, int]:
            counts.append(name)
            return real_counts(conn, pids, name, since)

        monkeypatch.setattr(timeline_store, "profiles_event_counts", counting)
        # No definitions are stored: every membership found is a change.
        found = {(name, pid) for name, pid, member
                 in step.membership_changes(conn, segments, ids, now) if member}
        states = profile_store.load_states(conn, ids)
        expected = {(s.name, pid) for pid in ids for s in segments
                    if matches(s.definition, step.profile_view(conn, pid, states[pid]), now)}
        assert found == expected
        assert set(counts) == {"Product Viewed", "Order Completed"}
        for segment in segments:  # the data tells members from the rest
            n = len({pid for name, pid in expected if name == segment.name})
            assert 0 < n < len(ids), segment.name
    finally:
        log.close()
