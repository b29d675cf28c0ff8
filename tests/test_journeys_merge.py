"""Merges move journey runs: a person's runs follow them onto the surviving profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journeys_util import Journeys

from kanal_collector.store import journeys as store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "journeys"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Journeys]:
    j = Journeys(tmp_path)
    j.write("abandoned_cart", (EXAMPLES / "abandoned_cart.yaml").read_text())
    j.sync()
    try:
        yield j
    finally:
        j.close()


def anonymous(env: Journeys, anon: str, event: str, **properties: Any) -> None:
    env.log.add("track", event=event, anon=anon, properties=properties,
                ts=env.now_ms(), received=env.now_ms())
    env.log.process()


def identify(env: Journeys, user_id: str, anon: str) -> None:
    env.log.add("identify", user_id=user_id, anon=anon, trusted=True,
                traits={"email": f"{user_id}@example.com"}, ts=env.now_ms(),
                received=env.now_ms())
    env.log.process()


def merges(env: Journeys) -> int:
    return int(env.conn.execute("SELECT count(*) FROM merges").fetchone()[0])


def test_an_anonymous_cart_follows_the_person_and_ends_on_their_order(env: Journeys) -> None:
    known = env.person("ann")
    anonymous(env, "a1", "Product Added", cart_id="c1")
    [run] = env.runs()
    assert run["profile_id"] != known and run["state"] == "active"
    env.advance(60)
    identify(env, "ann", "a1")  # the visitor logs in: their profile merges into ann's
    assert merges(env) == 1
    [run] = env.runs()
    assert run["profile_id"] == known and run["state"] == "active"
    timer = env.conn.execute("SELECT run_id FROM journey_timers").fetchall()
    assert timer == [(run["id"],)]
    env.advance(60)
    env.track("ann", "Order Completed", order_id="o1", revenue=30)
    [run] = env.runs()
    assert (run["state"], run["end_reason"]) == ("converted", "goal Order Completed")
    [conversion] = store.conversions(env.conn)
    assert conversion["profile_id"] == known
    env.advance(2 * 3600)
    assert env.outbox() == []
    assert store.count_timers(env.conn) == 0


def test_two_active_runs_of_one_journey_keep_the_older(env: Journeys) -> None:
    known = env.person("bo")
    env.track("bo", "Product Added", cart_id="c1")
    env.advance(60)
    anonymous(env, "a2", "Product Added", cart_id="c1")  # the same cart: a dedupe clash
    older, newer = env.runs()
    assert older["profile_id"] == known and newer["profile_id"] != known
    identify(env, "bo", "a2")
    older, newer = env.runs()
    assert older["profile_id"] == newer["profile_id"] == known
    assert older["state"] == "active"
    assert newer["state"] == "exited"
    assert f"run {older['id']} of abandoned_cart kept" in newer["end_reason"]
    last = store.run_log(env.conn, newer["id"])[-1]
    assert last["what"] == "exited" and last["detail"]["kept"] == older["id"]
    assert "merged" in last["detail"]["reason"]
    # one reminder, from the kept run; the ended run's timer is gone
    env.advance(3600)
    assert [(r["key"], r["profile_id"]) for r in env.outbox()] == [
        (f"journey:abandoned_cart:{older['id']}:cart_email", known)]
    # the cart can't start again for this person (its dedupe key stayed with one run)
    env.track("bo", "Product Added", cart_id="c1")
    assert len(env.runs()) == 2


def test_runs_of_two_carts_both_survive_a_merge(env: Journeys) -> None:
    """With a dedupe key runs are per cart: a merge keeps one run per cart, not one run."""
    known = env.person("dan")
    env.track("dan", "Product Added", cart_id="c1")
    anonymous(env, "a4", "Product Added", cart_id="c2")
    identify(env, "dan", "a4")
    assert [(r["dedupe"], r["profile_id"], r["state"]) for r in env.runs()] == [
        ("c1", known, "active"), ("c2", known, "active")]
    env.advance(3601)
    assert sorted(r["key"].rsplit(":", 2)[1] for r in env.outbox()) == [
        str(r["id"]) for r in env.runs()]


def test_ended_runs_move_too_and_merge_back_nothing(env: Journeys) -> None:
    known = env.person("cy")
    anonymous(env, "a3", "Product Added", cart_id="c9")
    anonymous(env, "a3", "Order Completed", order_id="o9")
    [run] = env.runs()
    assert run["state"] == "converted"
    identify(env, "cy", "a3")
    [run] = env.runs()
    assert run["profile_id"] == known and run["state"] == "converted"
    assert [c["profile_id"] for c in store.conversions(env.conn)] == [known]
