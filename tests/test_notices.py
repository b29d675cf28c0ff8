"""What `kanal serve` says at start and the dashboard shows (issue 13): sends a crash
left in doubt, and journeys sending marketing SMS to people without an SMS opt-in.
(Journeys that refused history: test_journeys_history.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from journeys_util import Journeys
from kanal_testing import App, make_app, start_collector
from test_dashboard import sign_in

from kanal_collector.app import build_processor, close_app
from kanal_collector.messages import enqueue
from kanal_collector.messages.eligibility import Policy
from kanal_collector.notices import in_doubt_notices, opt_in_notices, startup_notices
from kanal_collector.store import journeys as journey_store
from kanal_collector.store import outbox as outbox_store
from kanal_collector.store.connection import Connection
from kanal_collector.store.db import transaction


def _in_doubt(conn: Connection, profile_id: int, key: str, now_ms: int) -> int:
    """A row as a crash between the provider call and its record leaves it."""
    with transaction(conn):
        oid = enqueue(conn, profile_id=profile_id, message="cart", channel="email",
                      idempotency_key=key, kind="marketing", now=now_ms / 1000)
        [row] = outbox_store.claim(conn, "email", now_ms, 10, token="t", owner="dead")
        outbox_store.mark_final(conn, row.id, "t", "in_doubt", "interrupted", now_ms)
    return oid


def _a_send_in_doubt(env: App) -> int:
    """Identify u1 over HTTP, process, and leave a send to them in doubt; its id."""
    r = env.client.post("/v1/identify", auth=(env.keys["secret"], ""),
                        json={"userId": "u1", "traits": {"email": "a@example.com"}})
    assert r.status_code == 200
    processor = build_processor(env.app.extensions["kanal"].db)
    processor.catch_up()
    processor.close()
    conn = env.app.extensions["kanal"].db.conn()
    return _in_doubt(conn, 1, "k1", int(env.clock.now() * 1000))


def test_sends_in_doubt_are_named(journeys_env: Journeys) -> None:
    env = journeys_env
    assert in_doubt_notices(env.conn) == []
    pid = env.person("ann")
    ids = [_in_doubt(env.conn, pid, f"k{i}", env.now_ms()) for i in range(12)]
    [line] = in_doubt_notices(env.conn)
    assert line.startswith("12 send(s) are in doubt (outbox ")
    assert str(ids[-1]) in line and "and 2 more" in line
    assert "kanal outbox retry ID" in line


def test_the_dashboard_shows_sends_in_doubt(kanal_app: App) -> None:
    assert sign_in(kanal_app).status_code == 303
    page = kanal_app.client.get("/dashboard/").get_data(as_text=True)
    assert "in doubt" not in page
    oid = _a_send_in_doubt(kanal_app)
    for path in ("/dashboard/", "/dashboard/journeys", "/dashboard/costs"):
        page = kanal_app.client.get(path).get_data(as_text=True)
        assert f"1 send(s) are in doubt (outbox {oid})" in page, path
        assert 'role="alert"' in page


SMS_JOURNEY = """\
name: texts
trigger: {event: Product Added}
steps:
  - wait: 1h
  - send: cart
    channel: sms
    fallbacks: [email]
"""


def test_journeys_texting_people_without_an_opt_in_are_named(journeys_env: Journeys) -> None:
    env = journeys_env
    env.write("texts", SMS_JOURNEY)
    env.sync()
    people = (("ann", {}), ("bo", {"subscriptions": {"sms": True}}), ("cy", {}))
    for i, (user, traits) in enumerate(people):
        env.person(user, phone=f"+4670123456{i}", **traits)
        env.track(user, "Product Added")
    [line] = opt_in_notices(env.conn, Policy(), None)
    assert line.startswith("journey texts sends marketing SMS (step 2): 2 of the 3 "
                           "people in its active runs have no SMS opt-in")
    assert opt_in_notices(env.conn, Policy(opt_in=()), None) == []
    env.write("texts", SMS_JOURNEY.replace("steps:", "kind: transactional\nsteps:"))
    env.sync()
    assert opt_in_notices(env.conn, Policy(), None) == []


@pytest.mark.slow
def test_kanal_serve_announces_what_needs_a_look(tmp_path: Path) -> None:
    env = make_app(tmp_path / "kanal.db")
    try:
        oid = _a_send_in_doubt(env)
    finally:
        close_app(env.app)
    collector = start_collector(tmp_path / "kanal.db", args=["--no-workers"])
    try:
        output = "".join(collector.output)
        assert f"Notice: 1 send(s) are in doubt (outbox {oid})" in output
    finally:
        collector.stop()


def test_startup_notices_prune_the_old_tally(journeys_env: Journeys) -> None:
    env = journeys_env
    with transaction(env.conn):
        journey_store.count_refusals(env.conn, {("cart", "too_old", 0): 5})
    assert startup_notices(env.conn, now_ms=env.now_ms(), policy=Policy()) == []
    assert env.conn.execute("SELECT count(*) FROM journey_refusals").fetchone() == (0,)
