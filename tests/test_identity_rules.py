"""Identity resolution: the merge rules, example by example and against a model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles_util import Log

from kanal_collector.contacts import is_junk
from kanal_collector.contacts import normalise_email as normalize_email
from kanal_collector.contacts import normalise_phone as normalize_phone
from kanal_collector.profiles.identity import clean_id
from kanal_collector.store import identities as identity_store


@pytest.fixture
def log(tmp_path: Path) -> Any:
    log = Log(tmp_path / "k.db")
    yield log
    log.close()


def partition(log: Log) -> set[frozenset[tuple[str, str]]]:
    groups: dict[int, set[tuple[str, str]]] = {}
    for kind, value, pid in log.conn.execute("SELECT kind, value, profile_id FROM identities"):
        groups.setdefault(pid, set()).add((kind, value))
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("value", ["", "null", "NULL", "undefined", "0", "anonymous",
                                   "[object Object]", "None", "NaN", "-1", "  null ", "000",
                                   None, {"a": 1}])
def test_junk_ids(value: Any) -> None:
    assert is_junk(value)
    assert clean_id(value) is None


@pytest.mark.parametrize("value", ["1", "u-42", "a1b2c3", "ann@example.com", "00042"])
def test_real_ids(value: str) -> None:
    assert not is_junk(value)


@pytest.mark.parametrize(("raw", "expected"), [
    (" Ann@Example.COM ", "ann@example.com"), ("not-an-email", None), ("null@x", None),
    (42, None),
])
def test_normalize_email(raw: Any, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("+46 70-123 45 67", "+46701234567"), ("0046701234567", "+46701234567"),
    ("0000000", None), ("12", None), ("phone", None),
])
def test_normalize_phone(raw: Any, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_public_identify_links_anonymous_history_to_user(log: Log) -> None:
    log.add("page", anon="a1")
    log.add("track", event="Product Viewed", anon="a1")
    log.add("identify", user_id="u1", anon="a1", traits={"name": "Ann"})
    log.process()
    assert partition(log) == {frozenset({("anonymous_id", "a1"), ("user_id", "u1")})}
    assert log.profile("u1")["traits"] == {"name": "Ann"}  # type: ignore[index]
    assert len(log.conn.execute("SELECT * FROM profile_events").fetchall()) == 3


def test_public_identify_merges_anonymous_profile_into_known_user(log: Log) -> None:
    log.add("identify", user_id="u1", trusted=True, traits={"email": "ann@x.io"})
    log.add("page", anon="a9")
    log.add("identify", user_id="u1", anon="a9")
    log.process()
    assert partition(log) == {frozenset({("anonymous_id", "a9"), ("user_id", "u1"),
                                         ("email", "ann@x.io")})}
    merges = log.conn.execute("SELECT reason FROM merges").fetchall()
    assert merges == [("anonymous",)]
    # idempotent: the same identify again changes nothing and records no merge
    log.add("identify", user_id="u1", anon="a9")
    log.process()
    assert log.conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 1


def test_public_identify_never_merges_two_identified_profiles(log: Log) -> None:
    log.add("identify", user_id="u1", anon="a1")
    log.add("identify", user_id="u2", anon="a2")
    log.add("identify", user_id="u2", anon="a1")  # a1 belongs to u1: not moved
    log.add("alias", user_id="u2", previous_id="u1")  # public alias of two users: refused
    log.process()
    assert partition(log) == {
        frozenset({("anonymous_id", "a1"), ("user_id", "u1")}),
        frozenset({("anonymous_id", "a2"), ("user_id", "u2")}),
    }
    assert log.conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 0


def test_public_events_never_attach_contacts(log: Log) -> None:
    log.add("identify", user_id="u1", traits={"email": "ann@x.io", "phone": "+46701234567"},
            context={"device": {"token": "tok-1"}})
    log.process()
    assert partition(log) == {frozenset({("user_id", "u1")})}
    profile = log.profile("u1")
    assert profile is not None
    assert profile["traits"] == {}
    assert profile["claimed"] == {"email": "ann@x.io", "phone": "+46701234567"}


def test_user_hash_verified_identify_may_merge(log: Log) -> None:
    log.add("identify", user_id="u1", anon="a1")
    log.add("identify", user_id="u2", anon="a2")
    log.add("identify", user_id="u2", anon="a1", trusted=True,
            traits={"email": "b@x.io"}, context={"device": {"token": "tok-2"}})
    log.process()
    assert partition(log) == {frozenset({
        ("anonymous_id", "a1"), ("anonymous_id", "a2"), ("user_id", "u1"), ("user_id", "u2"),
        ("email", "b@x.io"), ("push_token", "tok-2")})}


def test_secret_alias_merges_and_email_links_people(log: Log) -> None:
    log.add("identify", user_id="old-id", trusted=True)
    log.add("identify", user_id="new-id", trusted=True)
    log.add("alias", user_id="new-id", previous_id="old-id", trusted=True)
    log.add("identify", anon="kiosk-1", trusted=True, traits={"email": "c@x.io"})
    log.add("identify", user_id="new-id", trusted=True, traits={"email": "C@X.io"})
    log.process()
    assert partition(log) == {frozenset({
        ("user_id", "old-id"), ("user_id", "new-id"), ("anonymous_id", "kiosk-1"),
        ("anonymous_id", "old-id"),  # a trusted alias' previousId joins as both kinds
        ("email", "c@x.io")})}


def test_a_batch_asks_only_whether_a_log_in_s_other_profiles_are_identified(
        log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    # #18: on a big database each profile asked about is a page of the identities' index
    # by profile; only an untrusted event naming a userId beside another profile's
    # anonymousId needs the answer (an identified profile is never moved).
    log.add("identify", user_id="u1", anon="a1")
    log.add("identify", user_id="u2", anon="a2")
    log.add("page", anon="a3")
    log.process()
    asked: list[list[int]] = []
    real = identity_store.identified_profiles

    def spy(conn: Any, profile_ids: Any) -> set[int]:
        asked.append(sorted(set(profile_ids)))
        return real(conn, profile_ids)

    monkeypatch.setattr(identity_store, "identified_profiles", spy)
    log.add("page", user_id="u1")
    log.add("track", event="Product Viewed", anon="a2")
    log.add("identify", user_id="u2", anon="a2")  # already u2's: nothing to ask
    log.process()
    assert asked == []
    u1, u2, a3 = log.pid("a1"), log.pid("a2"), log.pid("a3")
    log.add("identify", user_id="u2", anon="a1")  # u1's: not moved
    log.add("identify", user_id="u2", anon="a3")  # anonymous: merged into u2
    log.process()
    assert asked == [sorted({u1, u2, a3})]  # type: ignore[type-var]  # one statement
    assert partition(log) == {
        frozenset({("anonymous_id", "a1"), ("user_id", "u1")}),
        frozenset({("anonymous_id", "a2"), ("anonymous_id", "a3"), ("user_id", "u2")}),
    }


def test_junk_ids_never_merge(log: Log) -> None:
    log.add("identify", user_id="u1", anon="undefined")
    log.add("identify", user_id="u2", anon="undefined")
    log.add("identify", user_id="null", anon="a3", trusted=True)
    log.add("identify", user_id="0", anon="a4", trusted=True)
    log.add("page", anon="[object Object]")
    log.process()
    assert partition(log) == {frozenset({("user_id", "u1")}), frozenset({("user_id", "u2")}),
                              frozenset({("anonymous_id", "a3")}),
                              frozenset({("anonymous_id", "a4")})}


def test_out_of_order_events_land_on_the_merged_profile(log: Log) -> None:
    # The identify is stored first; the visitor's older page views arrive later.
    log.add("identify", user_id="u1", anon="a1", ts=5_000, traits={"plan": "new"})
    log.add("identify", user_id="u1", anon="a1", ts=1_000, traits={"plan": "old"})
    log.add("page", anon="a1", ts=500)
    log.process()
    profile = log.profile("a1")
    assert profile is not None
    assert profile["traits"] == {"plan": "new"}  # a late old event never overwrites
    assert profile["computed"]["firstSeen"] == 500
    assert len(log.profile("u1")["identities"]) == 2  # type: ignore[index]


# -- property-based: the rules against a simple model -----------------------------------

USERS = ["u1", "u2", "u3", "null", "0"]
ANONS = ["a1", "a2", "a3", "undefined", "[object Object]"]
EMAILS = ["e1@x.io", "e2@x.io", "none"]

events = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["identify", "track", "page", "alias"]),
    "user": st.one_of(st.none(), st.sampled_from(USERS)),
    "anon": st.one_of(st.none(), st.sampled_from(ANONS)),
    "prev": st.sampled_from(USERS + ANONS),
    "email": st.one_of(st.none(), st.sampled_from(EMAILS)),
    "trusted": st.booleans(),
}), min_size=1, max_size=10)


class Model:
    """The rules written plainly over sets of identities."""

    def __init__(self) -> None:
        self.people: list[set[tuple[str, str]]] = []

    def find(self, ident: tuple[str, str]) -> set[tuple[str, str]] | None:
        return next((p for p in self.people if ident in p), None)

    @staticmethod
    def known(person: set[tuple[str, str]]) -> bool:
        return any(kind != "anonymous_id" for kind, _ in person)

    def apply(self, e: dict[str, Any]) -> None:
        user = clean_id(e["user"])
        anon = clean_id(e["anon"])
        prev = clean_id(e["prev"]) if e["type"] == "alias" and user else None
        if not user and not anon and not e["trusted"]:
            return
        prev_ident = None
        if prev:
            prev_ident = ("user_id", prev) if self.find(("user_id", prev)) else \
                ("anonymous_id", prev)
        if e["trusted"]:
            # A trusted alias' previousId joins as both an anonymousId and a userId.
            prev_idents = [("user_id", prev), ("anonymous_id", prev)] if prev else []
            idents = [i for i in [("user_id", user), ("anonymous_id", anon), *prev_idents,
                                  ("email", normalize_email(e["email"]))
                                  if e["type"] == "identify" else None]
                      if i is not None and i[1] is not None]
            if not idents:
                return
            merged: set[tuple[str, str]] = set(idents)
            for ident in idents:
                person = self.find(ident)
                if person is not None and person is not merged:
                    merged |= person
                    self.people.remove(person)
            self.people.append(merged)
            return
        if not user:
            assert anon is not None
            if self.find(("anonymous_id", anon)) is None:
                self.people.append({("anonymous_id", anon)})
            return
        me = self.find(("user_id", user))
        visitors = [("anonymous_id", anon)] if anon else []
        visitors += [prev_ident] if prev_ident else []
        for ident in visitors:
            person = self.find(ident)
            if person is None:
                if ident[0] != "anonymous_id":
                    continue
                if me is None:
                    me = {("user_id", user)}
                    self.people.append(me)
                me.add(ident)
            elif person is me or self.known(person):
                continue
            elif me is None:
                person.add(("user_id", user))
                me = person
            else:
                me |= person
                self.people.remove(person)
        if me is None:
            self.people.append({("user_id", user)})

    def partition(self) -> set[frozenset[tuple[str, str]]]:
        return {frozenset(p) for p in self.people}


def _add(log: Log, e: dict[str, Any]) -> bool:
    traits = {"email": e["email"]} if e["email"] and e["type"] == "identify" else None
    kind = e["type"]
    if kind == "alias" and e["user"] is None:
        return False  # ingest refuses an alias without a userId
    if e["user"] is None and e["anon"] is None:
        return False  # ingest refuses a message without an id
    log.add(kind, event="Clicked" if kind == "track" else None, user_id=e["user"],
            anon=e["anon"], trusted=e["trusted"], traits=traits,
            previous_id=e["prev"] if kind == "alias" else None)
    return True


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_merge_rules_match_the_model(seq: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Log(Path(tmp) / "k.db")
        model = Model()
        try:
            for e in seq:
                before = partition(log)
                if _add(log, e):
                    model.apply(e)
                log.process()
                after = partition(log)
                assert after == model.partition()
                for group in after:  # never a junk id
                    assert not any(is_junk(v) for _, v in group)
                if not e["trusted"]:
                    # an untrusted event leaves alone every identified person it does not
                    # name by userId: no merge, no move, no new contact
                    user = clean_id(e["user"])
                    for group in before:
                        if Model.known(set(group)) and ("user_id", user) not in group:
                            assert group in after
                    old = {i for g in before for i in g}
                    new = {i for g in after for i in g} - old
                    assert all(kind in ("user_id", "anonymous_id") for kind, _ in new)
            # idempotency: every event stored again (new messageIds) changes nothing
            final = partition(log)
            merges = log.conn.execute("SELECT count(*) FROM merges").fetchone()[0]
            for e in seq:
                _add(log, e)
            log.process()
            assert partition(log) == final
            assert log.conn.execute("SELECT count(*) FROM merges").fetchone()[0] == merges
        finally:
            log.close()


def _search_oracle(conn: Any, prefix: str, limit: int) -> list[int]:
    """The search as one SQL statement reading every match (before the cap)."""
    return [int(r[0]) for r in conn.execute(
        "SELECT i.profile_id, max(p.last_seen) AS seen FROM identities i "
        "JOIN profiles p ON p.id = i.profile_id WHERE i.value >= ? AND i.value < ? "
        "GROUP BY i.profile_id ORDER BY seen DESC NULLS LAST, i.profile_id DESC LIMIT ?",
        (prefix, prefix + "\U0010ffff", limit))]


def test_identity_search_orders_as_one_statement_would(log: Log) -> None:
    """Several identities a person, people never seen, equal last seen: the first
    `matches` identities' people, seen most recently first, as a statement reading every
    match orders them when nothing is cut off."""
    import random

    from kanal_collector.store import profiles as profile_store
    from kanal_collector.store.db import transaction
    rnd = random.Random(7)
    conn = log.conn
    with transaction(conn):
        for i in range(80):
            last = rnd.choice([None, 1_000, 2_000, rnd.randrange(10**6)])
            pid = profile_store.create_profile(conn, 0, {} if last is None else {"last": last})
            identity_store.add_identities(conn, [
                ("user_id", f"p{rnd.randrange(300):03d}-{i}-{j}", pid, None)
                for j in range(rnd.randrange(1, 4))])
    for prefix in ("p", "p0", "p1", "p29", "q"):
        want = _search_oracle(conn, prefix, 500)
        assert identity_store.search_identities(conn, prefix, 500) == (want, False)
        assert identity_store.search_identities(conn, prefix, 7) == (want[:7], False)
    found, more = identity_store.search_identities(conn, "p", 500, matches=20)
    assert more and len(found) <= 20
    first = [int(r[0]) for r in conn.execute(
        "SELECT profile_id FROM identities WHERE value >= 'p' ORDER BY value LIMIT 20")]
    assert sorted(found) == sorted(set(first))
