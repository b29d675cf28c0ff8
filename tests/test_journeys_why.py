"""`kanal journeys why`: runs, sends and their reasons, and why a trigger started no run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from journeys_util import Journeys
from kanal_testing import db_at
from messages_util import catalog, channel

from kanal_collector.cli import cli
from kanal_collector.config import Config
from kanal_collector.journeys.explain import WhyError, explain, reason_words, render
from kanal_collector.messages import Dispatcher
from kanal_collector.messages.controls import Controls
from kanal_collector.store.db import transaction

HOUR = 3600
DAY = 86_400

CART = """\
name: cart
trigger: {event: Product Added}
entry: {rule: every_time, dedupe: cart_id}
goal: {event: Order Completed, within: 7d}
steps:
  - wait_for: {event: Order Completed, timeout: 1h}
    on_timeout:
      - send: cart
        channel: email
      - wait: 1d
      - send: cart
        channel: sms
"""

WELCOME = """\
name: welcome
trigger: {event: Signed Up, where: {plan: pro}}
entry: {rule: once}
steps:
  - split:
      holdout: 50
      arms:
        - name: a
          steps:
            - send: cart
              channel: email
"""


class Env(Journeys):
    """Journeys with a dispatcher of recording channels (email, sms)."""

    def __init__(self, tmp: Path, controls: Controls | None = None) -> None:
        super().__init__(tmp)
        self.channels = [channel("email"), channel("sms", identity="phone")]
        self.dispatcher = Dispatcher(self.log.db, self.clock,
                                     {c.name: c for c in self.channels}, catalog(),
                                     before_send=[], controls=controls)
        self.path = tmp / "kanal.db"

    def step(self, seconds: float) -> None:
        self.advance(seconds)
        self.dispatcher.drain()
        self.log.process()

    def why(self, user: str, journey: str) -> dict[str, Any]:
        return explain(self.conn, user, journey, now_ms=self.now_ms())

    def close(self) -> None:
        self.dispatcher.close()
        super().close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()


def sends(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if s["kind"] == "send"]


def test_a_run_that_sent_then_skipped_for_no_phone(env: Env) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ann", timezone="Europe/Stockholm")
    env.track("ann", "Product Added", cart_id="c1")
    env.step(HOUR)
    env.step(DAY)
    report = env.why("ann@example.com", "cart")  # by email: the same person
    [run] = report["runs"]
    assert run["state"] == "completed"
    assert run["trigger"]["event"] == "Product Added"
    assert run["trigger"]["properties"] == {"cart_id": "c1"}
    kinds = [s["kind"] for s in run["steps"]]
    assert kinds == ["wait_for", "send", "wait", "send"]
    assert run["steps"][0]["what"] == "timeout"
    email, sms = sends(run)
    assert email["outbox"]["state"] == "sent"
    assert email["outbox"]["sentAt"]["ms"] == run["enteredAt"]["ms"] + HOUR * 1000
    assert email["outbox"]["sentAt"]["local"].endswith("+0100")  # the person's timezone
    assert sms["outbox"]["state"] == "skipped"
    assert "no trusted phone" in sms["text"] and "when it was queued" in sms["text"]
    assert run["steps"][2]["until"]["ms"] == email["outbox"]["sentAt"]["ms"] + DAY * 1000
    assert run["end"]["state"] == "completed"
    text = render(report)
    assert "Europe/Stockholm" in text and "sent at" in text and "timed out" in text


def test_unsubscribed_at_send_time(env: Env) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("bo")
    env.track("bo", "Product Added", cart_id="c1")
    env.advance(HOUR)  # queued, not yet dispatched
    env.log.add("identify", user_id="bo", trusted=True, traits={"unsubscribed": True},
                ts=env.now_ms(), received=env.now_ms())
    env.log.process()
    env.dispatcher.drain()
    [run] = env.why("bo", "cart")["runs"]
    email = sends(run)[0]
    assert email["outbox"]["state"] == "skipped"
    assert email["outbox"]["reason"] == "unsubscribed"
    assert "unsubscribed" in email["text"] and "when it was due" in email["text"]


def test_holdout_and_no_match_and_once(env: Env) -> None:
    env.write("welcome", WELCOME)
    env.sync()
    ends = {}
    for i in range(12):
        user = f"u{i}"
        env.person(user)
        env.track(user, "Signed Up", plan="pro")
        [run] = env.why(user, "welcome")["runs"]
        ends[run["end"]["text"].split(" at ")[0]] = user
    holdout = next(u for t, u in ends.items() if "holdout" in t)
    report = env.why(holdout, "welcome")
    [run] = report["runs"]
    assert run["steps"][0]["arm"] == "holdout"
    assert run["end"]["reason"] == "holdout"
    env.track(holdout, "Signed Up", plan="pro")
    again = env.why(holdout, "welcome")["notEntered"]
    assert [n["code"] for n in again] == ["once"]
    assert again[0]["runId"] == run["id"]
    env.person("free")
    env.track("free", "Signed Up", plan="free")
    report = env.why("free", "welcome")
    assert report["runs"] == []
    assert report["notEntered"][0]["code"] == "no_match"
    assert "plan" in report["summary"]


def test_no_trigger_and_dedupe(env: Env) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("cy")
    report = env.why("cy", "cart")
    assert report["runs"] == [] and report["notEntered"] == []
    assert report["summary"] == "no run: the person never sent Product Added"
    for props in ({"cart_id": "c9"}, {"cart_id": "c9"},  # the second while the first runs
                  {"order_id": "o1", "total": 42.5},
                  {"cart_id": "c9"},  # after: the key is used
                  {}):  # no key at all
        env.step(60)
        env.track("cy", "Order Completed" if "order_id" in props else "Product Added",
                  **props)
    report = env.why("cy", "cart")
    [run] = report["runs"]
    assert run["state"] == "converted"
    assert run["conversion"]["revenue"] == 42.5
    assert "revenue 42.5" in run["conversion"]["text"]
    assert run["steps"][0]["what"] == "waiting" or run["end"]["state"] == "converted"
    codes = [(n["code"], n.get("runId"), n.get("value")) for n in report["notEntered"]]
    # With a dedupe key runs are per value: the same cart while its run is going is
    # deduplicated like any later one (one run at a time is per value).
    assert codes == [("deduplicated", run["id"], "c9"),
                     ("deduplicated", run["id"], "c9"), ("no_dedupe_key", None, None)]
    assert "cart_id = 'c9'" in report["notEntered"][1]["text"]


def test_deferred_and_capped_sends_are_explained(env: Env) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("di", timezone="America/New_York")
    env.track("di", "Product Added", cart_id="c1")
    env.advance(HOUR)  # the email is queued
    [row] = env.outbox()
    until = env.now_ms() + 8 * HOUR * 1000
    # What the dispatcher's controls record when a send falls in quiet hours.
    with transaction(env.conn) as conn:
        outbox_id = conn.execute("SELECT id FROM outbox").fetchone()[0]
        conn.execute("UPDATE outbox SET reason = 'deferred: quiet hours', "
                     "next_attempt_at = ? WHERE id = ?", (until, outbox_id))
        conn.execute("INSERT INTO outbox_log (outbox_id, at, what, detail) VALUES (?,?,?,?)",
                     (outbox_id, env.now_ms(), "deferred",
                      json.dumps({"reason": "quiet hours", "until": until})))
    [run] = env.why("di", "cart")["runs"]
    email = sends(run)[0]
    assert email["outbox"]["state"] == "queued"
    assert "quiet hours" in email["text"] and "due" in email["text"]
    [decision] = email["outbox"]["decisions"]
    assert decision["what"] == "deferred" and "America/New_York" in decision["text"]
    with transaction(env.conn) as conn:
        conn.execute("UPDATE outbox SET state = 'skipped', reason = ?, attempts = 1, "
                     "claim_token = 'x' WHERE id = ?", ("frequency cap: 3 per 7d", outbox_id))
    [run] = env.why("di", "cart")["runs"]
    email = sends(run)[0]
    assert "frequency cap allows (3 per 7d)" in email["text"]
    assert row["message"] == "cart"


def test_quiet_hours_driven_for_real(tmp_path: Path) -> None:
    quiet = Controls.from_config(Config(sections={
        "quiet_hours": {"from": "22:00", "to": "08:00", "timezone": "Europe/London"}}))
    env = Env(tmp_path, quiet)
    try:
        env.write("cart", CART)
        env.sync()
        env.person("fay")  # no timezone of her own: the configured one applies
        env.track("fay", "Product Added", cart_id="c1")
        env.step(HOUR)  # due at 23:13 UTC: deferred to 08:00
        [run] = env.why("fay", "cart")["runs"]
        email = sends(run)[0]
        assert email["outbox"]["state"] == "queued"
        assert email["outbox"]["reason"] == "deferred: quiet hours"
        [decision] = email["outbox"]["decisions"]
        assert decision["what"] == "deferred"
        assert "quiet hours" in decision["text"] and "08:00:00 Europe/London" in decision["text"]
        assert email["outbox"]["dueAt"]["utc"].endswith("T08:00:00Z")
        env.step(9 * HOUR)
        [run] = env.why("fay", "cart")["runs"]
        email = sends(run)[0]
        assert email["outbox"]["state"] == "sent"
        assert "after being deferred 1 time(s)" in email["text"]
    finally:
        env.close()


@pytest.mark.parametrize(("reason", "words"), [
    ("quiet hours", "quiet hours"),
    ("daily budget: 1000 a day", "budget was used up (1000 a day)"),
    ("deferred: frequency cap: 1 per 1d", "deferred: the person had already had"),
    ("suppressed", "asked to be forgotten"),
    ("no consent", "consent"),
    ("no profile", "gone"),
    ("no content: message 'x' has no sms content", "no content for channel sms"),
])
def test_reason_words(reason: str, words: str) -> None:
    assert words in reason_words(reason, "sms")


def test_cli_json_and_unknowns_exit_2(env: Env) -> None:
    env.write("cart", CART)
    env.sync()
    env.person("ed")
    env.track("ed", "Product Added", cart_id="c1")
    db = db_at(env.path)
    result = CliRunner().invoke(cli, ["journeys", "why", "ed", "cart", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"journey", "person", "runs", "notEntered", "summary"}
    assert data["person"]["identities"][0] == {"kind": "email", "value": "ed@example.com"}
    assert data["runs"][0]["end"]["state"] == "active"
    assert data["runs"][0]["steps"][0]["what"] == "waiting"
    pid = data["person"]["profileId"]
    # The CLI asks at the real now, long after the fake clock's timer was due.
    assert "overdue" in data["runs"][0]["end"]["text"]
    assert "overdue" not in env.why("ed", "cart")["runs"][0]["end"]["text"]
    text = CliRunner().invoke(cli, ["journeys", "why", f"profile:{pid}", "cart", "--db", db])
    assert text.exit_code == 0 and "waiting for Order Completed" in text.output
    nobody = CliRunner().invoke(cli, ["journeys", "why", "zed", "cart", "--db", db])
    assert nobody.exit_code == 2 and "no person" in nobody.output
    nothing = CliRunner().invoke(cli, ["journeys", "why", "ed", "nope", "--db", db])
    assert nothing.exit_code == 2 and "no journey named 'nope'" in nothing.output
    with pytest.raises(WhyError):
        env.why("profile:999", "cart")
