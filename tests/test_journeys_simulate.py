"""`kanal journeys simulate`: a replay on a copy gives what the journey did live."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from journeys_util import START, Journeys
from kanal_testing import connect_to
from messages_util import CART, catalog, channel

from kanal_collector.cli import cli
from kanal_collector.config import load_config
from kanal_collector.journeys.simulate import WebhookRecorder
from kanal_collector.messages import Dispatcher
from kanal_collector.messages.controls import Controls
from kanal_collector.profiles import importer
from kanal_collector.store import journeys as journey_store
from kanal_collector.store import segments as segment_store
from kanal_collector.store.connection import Connection
from kanal_collector.store.copy import digest
from kanal_collector.store.db import transaction
from kanal_collector.store.events import append_events
from kanal_collector.tracking.events import UNSUBSCRIBED, email_event

MIN = 60
HOUR = 3600
DAY = 86_400
T0 = -(-START // 600) * 600  # START on the 10-minute grid (so is 08:00, for quiet hours)

JOURNEY = """\
name: cart
trigger: {event: Product Added}
entry: {rule: every_time, dedupe: cart_id}
goal: {event: Order Completed, within: 7d}
steps:
  - wait_for: {event: Order Completed, timeout: 1h}
    on_event:
      - exit: ordered in time
    on_timeout:
      - send: cart
        channel: email
      - wait: 1d
      - if: {trait: vip, eq: true}
        then:
          - send: cart
            channel: sms
        else:
          - send: cart
            channel: email
      - set_trait: {reminded: true}
      - webhook: {url: "https://crm.example.com/hook"}
"""


class Live(Journeys):
    """The journey running live on the fake clock, with a dispatcher (recording channels)."""

    def __init__(self, tmp: Path, journey: str = JOURNEY, settings: str = "") -> None:
        self.calls = WebhookRecorder(None)  # type: ignore[arg-type]
        super().__init__(tmp, webhook_session=self.calls)
        self.calls.clock = self.clock
        self.clock.set(T0)
        messages = tmp / "messages"
        messages.mkdir()
        (messages / "cart.yaml").write_text(yaml.safe_dump(CART), encoding="utf-8")
        self.config = tmp / "kanal.toml"
        self.config.write_text(f'db = "{self.log.db.target}"\n[messages]\n'
                               f'messages_dir = "{messages}"\n{settings}', encoding="utf-8")
        self.channels = [channel("email"), channel("sms", identity="phone")]
        self.dispatcher = Dispatcher(
            self.log.db, self.clock, {c.name: c for c in self.channels}, catalog(),
            before_send=[], controls=Controls.from_config(load_config(self.config)))
        self.file = self.write("cart", journey)

    def step(self, seconds: float) -> None:
        self.advance(seconds)
        self.dispatcher.drain()
        self.log.process()

    def identify(self, user: str, **traits: Any) -> None:
        self.log.add("identify", user_id=user, trusted=True, traits=traits,
                     ts=self.now_ms(), received=self.now_ms())
        self.log.process()

    def close(self) -> None:
        self.dispatcher.close()
        super().close()


def run_scenario(live: Live, hours: int = 27) -> None:
    """Four shoppers over a day and a bit, on a 10-minute grid (timers land on it)."""
    plan: dict[int, list[tuple[str, str, dict[str, Any]]]] = {
        0: [("ann", "identify", {"email": "ann@example.com", "phone": "+46701234567",
                                 "vip": True, "subscriptions": {"sms": True}}),
            ("ann", "Product Added", {"cart_id": "c1"}),
            ("bo", "identify", {"email": "bo@example.com"}),
            ("bo", "Product Added", {"cart_id": "c2"})],
        10 * MIN: [("cy", "identify", {"email": "cy@example.com"}),
                   ("cy", "Product Added", {"cart_id": "c3"})],
        20 * MIN: [("di", "identify", {"email": "di@example.com", "unsubscribed": True}),
                   ("di", "Product Added", {"cart_id": "c4"})],
        30 * MIN: [("cy", "Order Completed", {"order_id": "o1", "total": 30})],
        2 * HOUR: [("bo", "Order Completed", {"order_id": "o2", "total": 100})],
        DAY + 2 * HOUR: [("ann", "Product Added", {"cart_id": "c1"}),
                         ("eve", "identify", {"email": "eve@example.com"}),
                         ("eve", "Page Viewed", {})],
    }
    for offset in range(0, hours * HOUR, 10 * MIN):
        for user, what, props in plan.get(offset, []):
            if what == "identify":
                live.identify(user, **props)
            else:
                live.track(user, what, **props)
        live.step(10 * MIN)


def outcome(conn: Connection) -> dict[str, Any]:
    """Who entered when, what was sent (message, channel, state, time), who converted."""
    users = dict(conn.execute("SELECT profile_id, value FROM identities "
                              "WHERE kind = 'user_id'").fetchall())
    entered = sorted((users[p], t) for p, t in conn.execute(
        "SELECT profile_id, entered_at FROM journey_runs"))
    sends = sorted(
        (users[p], m, c, s, sent if s == "sent" else due if s == "queued" else updated)
        for p, m, c, s, sent, due, updated in conn.execute(
            "SELECT profile_id, message, channel, state, sent_at, next_attempt_at, "
            "updated_at FROM outbox"))
    converted = sorted((users[p], r, t) for p, r, t in conn.execute(
        "SELECT profile_id, revenue, at FROM journey_conversions"))
    return {"entered": entered, "sends": sends, "converted": converted}


def simulated(report: dict[str, Any]) -> dict[str, Any]:
    entered, sends, converted = [], [], []
    for person in report["timelines"]:
        for run in person["runs"]:
            entered.append((person["person"], run["enteredAt"]))
            sends += [(person["person"], s["message"], s["channel"], s["state"], s["at"])
                      for s in run["sends"]]
            if run["conversion"]:
                converted.append((person["person"], run["conversion"]["revenue"],
                                  run["conversion"]["at"]))
    return {"entered": sorted(entered), "sends": sorted(sends), "converted": sorted(converted)}


def checksum(target: str) -> str:
    """A digest of every table of a database (either engine)."""
    conn = connect_to(target)
    try:
        whole = hashlib.sha256()
        for table in conn.dialect.tables(conn):
            columns = conn.dialect.columns(conn, table)
            key = conn.dialect.primary_key(conn, table)
            whole.update(repr((table, digest(conn, table, columns, key))).encode())
        return whole.hexdigest()
    finally:
        conn.close()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def simulate(live: Live, *args: str, file: Path | None = None) -> Any:
    return CliRunner().invoke(cli, ["journeys", "simulate", str(file or live.file),
                                    "--config", str(live.config), *args])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    env = Live(tmp_path)
    try:
        env.sync()
        run_scenario(env)
        yield env
    finally:
        env.close()


def test_simulation_matches_what_happened_live(live: Live) -> None:
    expected = outcome(live.conn)
    # The scenario covers what must match: sends, skips, conversions, a deduplicated cart.
    assert [e[0] for e in expected["entered"]] == ["ann", "bo", "cy", "di"]
    states = {(s[0], s[2], s[3]) for s in expected["sends"]}
    assert states == {("ann", "email", "sent"), ("ann", "sms", "sent"),
                      ("bo", "email", "sent"), ("di", "email", "skipped")}
    assert [(c[0], c[1]) for c in expected["converted"]] == [("bo", 100.0), ("cy", 30.0)]
    assert len(live.calls.calls) == 2  # ann and di (her emails were skipped)
    before = checksum(live.log.db.target)
    sent_before = [len(c.sent) for c in live.channels]
    result = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()),
                      "--json", "--limit", "100")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert simulated(report) == expected
    assert report["entered"] == 4 and report["people"] == 4
    assert report["conversions"] == 2 and report["revenue"] == 130
    assert report["webhookCalls"] == 2
    assert report["webhooks"][0]["url"] == "https://crm.example.com/hook"
    assert {"message": "cart", "channel": "email", "state": "sent", "count": 2} \
        in report["sends"]
    # Nothing changed in the real database, and nothing went out.
    assert checksum(live.log.db.target) == before
    assert [len(c.sent) for c in live.channels] == sent_before
    assert len(live.calls.calls) == 2  # ann and di (her emails were skipped)
    assert "replayed" in result.stderr


def test_refused_trigger_events_are_counted_as_live(live: Live) -> None:
    """History (a late event, an import) and the entry rules refuse the same trigger
    events in the replay as live, and the report says why."""
    now = live.now_ms()
    live.identify("eve", email="eve@example.com")
    live.log.add("track", event="Product Added", user_id="eve", trusted=True,
                 properties={"cart_id": "e1"}, ts=now - 40 * DAY * 1000, received=now)
    row = importer.to_event({"userId": "eve", "event": "Product Added",
                             "properties.cart_id": "e2"}, source_id=live.log.source,
                            received_ms=now, occurrence=1)
    with transaction(live.conn):
        append_events(live.conn, [row])
    live.step(MIN)
    refused = {code: n for (_, code), n in
               journey_store.refusals_since(live.conn, 0, "cart").items()}
    assert refused["too_old"] == 1 and refused["imported"] == 1
    result = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()),
                      "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["code"]: r["count"] for r in report["notEntered"]} == refused
    text = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()))
    assert "too_old\t1\ttoo old for the trigger's max_age" in text.stdout


def test_since_bounds_the_entries(live: Live) -> None:
    since = iso(T0 + 15 * MIN)  # after ann, bo and cy added their carts
    result = simulate(live, "--since", since, "--until", iso(live.clock.now()), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    people = [p["person"] for p in report["timelines"]]
    assert people == ["di", "ann"]  # di at 20 min; ann only on her second cart c1
    [ann] = [p for p in report["timelines"] if p["person"] == "ann"]
    assert ann["runs"][0]["enteredAt"] == (T0 + DAY + 2 * HOUR) * 1000
    until = iso(T0 + 15 * MIN)
    nothing = simulate(live, "--since", iso(T0), "--until", until, "--json")
    assert json.loads(nothing.stdout)["entered"] == 3  # ann, bo, cy; di came later


def test_text_report(live: Live) -> None:
    result = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()),
                      "--limit", "1")
    assert result.exit_code == 0, result.output
    assert "Entered: 4 runs by 4 people" in result.stdout
    assert "Converted: 2 (revenue 130)" in result.stdout
    assert "ann\n" in result.stdout and "\nbo\n" not in result.stdout
    relative = simulate(live, "--since", "3650d", "--limit", "0")  # until now
    assert relative.exit_code == 0, relative.output
    assert "Entered: 4 runs by 4 people" in relative.stdout


def test_an_invalid_file_exits_2_with_lines(live: Live, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        name: bad
        trigger: {event: Product Added}
        steps:
          - wait: soon
          - send: no_such_message
    """), encoding="utf-8")
    result = simulate(live, file=bad)
    assert result.exit_code == 2
    assert "bad.yaml:4: steps[0].wait" in result.stderr
    assert "bad.yaml:5: steps[1].send: no message named 'no_such_message'" in result.stderr
    assert simulate(live, "--since", "soon").exit_code == 2


CONTROLLED = JOURNEY.replace("steps:\n", "over_limit: skip\nsteps:\n", 1)
SETTINGS = """\
[quiet_hours]
from = "22:00"
to = "08:00"
[frequency]
per_week = 1
"""


def test_quiet_hours_and_caps_apply_as_live(tmp_path: Path) -> None:
    live = Live(tmp_path, CONTROLLED, SETTINGS)
    try:
        live.sync()
        run_scenario(live, hours=36)
        expected = outcome(live.conn)
        states = {(s[0], s[2], s[3]) for s in expected["sends"]}
        # 23:20 is in quiet hours: the emails went at 08:00; ann's sms, due the next
        # night, was deferred to 08:00 and then skipped over the weekly cap.
        assert states == {("ann", "email", "sent"), ("ann", "sms", "skipped"),
                          ("bo", "email", "sent"), ("di", "email", "skipped")}
        eight = datetime.fromtimestamp(T0 + DAY, UTC).replace(hour=8, minute=0).timestamp()
        assert ("ann", "cart", "email", "sent", int(eight) * 1000) in expected["sends"]
        reasons = dict(live.conn.execute("SELECT channel, reason FROM outbox "
                                         "WHERE state = 'skipped' AND channel = 'sms'"))
        assert reasons == {"sms": "frequency cap: 1 per week"}
        result = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()),
                          "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert simulated(report) == expected
        [ann] = [p for p in report["timelines"] if p["person"] == "ann"]
        sms = [s for s in ann["runs"][0]["sends"] if s["channel"] == "sms"][0]
        assert [d["what"] for d in sms["decisions"]] == ["deferred", "skipped"]
        assert sms["reason"] == "frequency cap: 1 per week"
    finally:
        live.close()


VIP = """\
name: vip
trigger: {segment: vip}
goal: {event: Order Completed, within: 7d}
steps:
  - wait: 2h
  - send: cart
    channel: email
"""


def test_a_segment_trigger_and_an_unsubscribe_link_replay_as_live(tmp_path: Path) -> None:
    live = Live(tmp_path, VIP)
    try:
        with transaction(live.conn) as conn:
            segment_store.put_segment_definitions(
                conn, {"vip": {"all": [{"trait": "vip", "eq": True}]}}, live.now_ms())
        live.sync()
        for user in ("gus", "hal", "ida"):
            live.identify(user, email=f"{user}@example.com", vip=user == "gus")
        for offset in range(0, 5 * HOUR, 10 * MIN):
            if offset == 30 * MIN:
                live.identify("hal", vip=True)
                live.identify("ida", vip=True)
            if offset == HOUR:
                live.track("gus", "Order Completed", order_id="o9", total=12.5)
            if offset == 2 * HOUR:  # ida clicks an unsubscribe link (Kanal's own event)
                with transaction(live.conn) as conn:
                    row = email_event(conn, UNSUBSCRIBED, profile_id=live.log.pid("ida"),
                                      properties={"channel": "email"},
                                      now_ms=live.now_ms())
                    assert row is not None
                    append_events(conn, [row])
                live.log.process()
            live.step(10 * MIN)
        expected = outcome(live.conn)
        assert [e[0] for e in expected["entered"]] == ["gus", "hal", "ida"]
        assert {(s[0], s[3]) for s in expected["sends"]} == {("hal", "sent"),
                                                             ("ida", "skipped")}
        assert expected["converted"][0][:2] == ("gus", 12.5)
        result = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()),
                          "--json")
        assert result.exit_code == 0, result.output
        assert simulated(json.loads(result.stdout)) == expected
    finally:
        live.close()


DAILY = """\
name: daily
trigger:
  schedule: {every: 1d, at: "09:00"}
  audience: {trait: vip, eq: true}
entry: {rule: once}
steps:
  - send: cart
    channel: email
"""


def test_a_scheduled_journey_replays_as_live(tmp_path: Path) -> None:
    live = Live(tmp_path, DAILY)
    try:
        live.sync()
        live.identify("gus", email="gus@example.com", vip=True)
        live.identify("hal", email="hal@example.com")
        for offset in range(0, 36 * HOUR, 10 * MIN):
            if offset == HOUR:
                live.identify("hal", vip=True)
            live.step(10 * MIN)
        expected = outcome(live.conn)
        assert [e[0] for e in expected["entered"]] == ["gus", "hal"]
        assert len(expected["sends"]) == 2
        result = simulate(live, "--since", iso(T0 - MIN), "--until", iso(live.clock.now()),
                          "--json")
        assert result.exit_code == 0, result.output
        assert simulated(json.loads(result.stdout)) == expected
    finally:
        live.close()
