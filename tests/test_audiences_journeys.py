"""Journey steps `audience: {add|remove: NAME}` end to end on the fake clock: the hold,
the sync, the run's end removing what it added unless `keep`, merges, public-key events
that can't aim the step, `kanal journeys validate` with FILE:LINE, and `why`."""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from journeys_util import Journeys
from kanal_testing import db_at

from kanal_collector.audiences.plugins import build_destination, check_audiences
from kanal_collector.audiences.sync import AudienceSync
from kanal_collector.audiences.worker import due_reason
from kanal_collector.cli import cli
from kanal_collector.config import load_config
from kanal_collector.journeys.explain import explain, render
from kanal_collector.store import audience_syncs as syncs
from kanal_collector.store import audiences as store

TOML = """\
[audiences.cart_retarget]
destination = "csv"
path = "{dir}/cart.csv"

[audiences.past_buyers]
destination = "csv"
path = "{dir}/buyers.csv"
"""

FUNNEL = """\
name: cart_funnel
trigger: {event: Product Added}
entry: {rule: every_time}
steps:
  - audience: {add: cart_retarget}
  - wait_for: {event: Order Completed, timeout: 1d}
    on_event:
      - audience: {add: past_buyers, keep: true}
      - exit: ordered
  - send: cart
    channel: email
"""


class Env(Journeys):
    """Journeys on a fake clock, and two CSV audiences only journeys fill."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        (tmp / "kanal.toml").write_text(TOML.format(dir=tmp), encoding="utf-8")
        self.config = load_config(tmp / "kanal.toml")
        self.settings = check_audiences(self.config)
        self.tmp = tmp

    def sync_audience(self, name: str) -> Any:
        destination = build_destination(self.settings[name])
        return AudienceSync(self.conn, self.settings[name], destination,
                            self.clock).step("test")

    def lines(self, name: str) -> list[tuple[str, str]]:
        """(action, email hash) of every line the audience's CSV got."""
        path = self.tmp / ("cart.csv" if name == "cart_retarget" else "buyers.csv")
        if not path.exists():
            return []
        with path.open(encoding="utf-8") as f:
            return [(r["action"], r["email_sha256"]) for r in csv.DictReader(f)]

    def members(self, name: str) -> int:
        return store.counts(self.conn, name)["added"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    e.write("cart_funnel", FUNNEL)
    e.sync()
    yield e
    e.close()


def test_add_until_the_run_ends_and_keep(env: Env) -> None:
    pid = env.person("ada", consent={"advertising": True})
    env.track("ada", "Product Added", cart_id="c1")
    assert store.held_ids(env.conn, "cart_retarget") == {pid}
    # the change makes the audience due a minute after its last round (it had none)
    assert due_reason(syncs.sync_state(env.conn, "cart_retarget"), env.now_ms()) == "first"
    env.sync_audience("cart_retarget")
    assert [a for a, _ in env.lines("cart_retarget")] == ["add"]
    env.advance(3600)
    env.track("ada", "Order Completed", order_id="o1")
    runs = env.runs("cart_funnel")
    assert runs[-1]["state"] == "exited"
    # the run ended: what it added without keep leaves; past_buyers keeps her
    assert store.held_ids(env.conn, "cart_retarget") == set()
    assert store.held_ids(env.conn, "past_buyers") == {pid}
    assert syncs.sync_state(env.conn, "cart_retarget")["dirty_at"] == env.now_ms()
    env.sync_audience("cart_retarget")
    env.sync_audience("past_buyers")
    assert [a for a, _ in env.lines("cart_retarget")] == ["add", "remove"]
    assert env.members("cart_retarget") == 0 and env.members("past_buyers") == 1
    # a later run of the journey (every_time) and its end don't touch past_buyers
    env.track("ada", "Product Added", cart_id="c2")
    env.advance(2 * 86_400)
    assert env.runs("cart_funnel")[-1]["state"] == "completed"
    env.sync_audience("past_buyers")
    assert env.members("past_buyers") == 1 and len(env.lines("past_buyers")) == 1


def test_remove_step(env: Env) -> None:
    env.write("unsubscribe_ads", """\
        name: unsubscribe_ads
        trigger: {event: Ads Opted Out}
        steps:
          - audience: {remove: past_buyers}
        """)
    env.sync()
    env.person("ada", consent={"advertising": True})
    env.track("ada", "Product Added", cart_id="c1")
    env.track("ada", "Order Completed", order_id="o1")
    env.sync_audience("past_buyers")
    assert env.members("past_buyers") == 1
    env.track("ada", "Ads Opted Out")
    env.sync_audience("past_buyers")
    assert [a for a, _ in env.lines("past_buyers")] == ["add", "remove"]
    assert env.members("past_buyers") == 0


def test_a_public_key_event_cannot_choose_the_audience(env: Env) -> None:
    pid = env.person("ada", consent={"advertising": True})
    # an untrusted (browser) event naming another audience in its properties
    env.log.add("track", event="Product Added", user_id="ada", trusted=False,
                properties={"cart_id": "c9", "audience": "past_buyers"},
                ts=env.now_ms(), received=env.now_ms())
    env.log.process()
    assert store.held_ids(env.conn, "cart_retarget") == {pid}
    assert store.held_ids(env.conn, "past_buyers") == set()


def test_holds_follow_a_merge(env: Env) -> None:
    # an anonymous visitor's cart: a hold, but no email to send yet
    env.log.add("track", event="Product Added", anon="v1", properties={"cart_id": "c"},
                ts=env.now_ms(), received=env.now_ms())
    env.log.process()
    anon = env.log.pid("v1", "anonymous_id")
    assert store.held_ids(env.conn, "cart_retarget") == {anon}
    env.sync_audience("cart_retarget")
    assert env.lines("cart_retarget") == []
    assert store.counts(env.conn, "cart_retarget")["skipped:no consent"] == 1
    # she signs in (a trusted identify with her anonymousId): the profiles merge
    env.clock.advance(1)
    env.log.add("identify", user_id="ada", anon="v1", trusted=True,
                traits={"email": "ada@example.com", "consent": {"advertising": True}},
                ts=env.now_ms(), received=env.now_ms())
    env.log.process()
    pid = env.log.pid("ada")
    assert pid is not None and store.held_ids(env.conn, "cart_retarget") == {pid}
    env.sync_audience("cart_retarget")
    assert [a for a, _ in env.lines("cart_retarget")] == ["add"]
    assert store.counts(env.conn, "cart_retarget").get("skipped:no consent", 0) == 0


def test_why_tells_the_step(env: Env) -> None:
    env.person("ada", consent={"advertising": True})
    env.track("ada", "Product Added", cart_id="c1")
    text = render(explain(env.conn, "ada", "cart_funnel", now_ms=env.now_ms()))
    assert "put in audience cart_retarget (until the run ends)" in text
    assert "waiting for Order Completed" in text


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_validate_names_every_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "kanal.toml").write_text(TOML.format(dir=tmp_path), encoding="utf-8")
    good = write(tmp_path, "good.yaml", FUNNEL)
    bad = write(tmp_path, "bad.yaml", """\
        name: bad
        trigger: {event: Product Added}
        steps:
          - audience: {add: cart_retargte}
          - audience: {add: cart_retarget, remove: past_buyers}
          - audience: {remove: past_buyers, keep: true}
          - audience: {add: "{{ event.audience }}"}
          - audience: cart_retarget
        """)
    runner = CliRunner()
    ok = runner.invoke(cli, ["journeys", "validate", str(good),
                             "--config", str(tmp_path / "kanal.toml")])
    assert ok.exit_code == 0, ok.output
    result = runner.invoke(cli, ["journeys", "validate", str(bad),
                                 "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{bad}:5: steps[1].audience: exactly one of add or remove" in lines
    assert (f"{bad}:6: steps[2].audience.keep: only with add (keep the person after the "
            "run ends)") in lines
    assert any(line.startswith(f"{bad}:7: steps[3].audience.add: an audience name") for
               line in lines)
    assert (f"{bad}:8: steps[4].audience: a mapping: {{add: NAME}} or {{remove: NAME}} "
            "(an [audiences.NAME] of kanal.toml)") in lines
    # the file's shape is fine otherwise: the unknown name is checked against kanal.toml
    bad.write_text(textwrap.dedent("""\
        name: bad
        trigger: {event: Product Added}
        steps:
          - wait: 1h
          - audience: {add: cart_retargte}
        """), encoding="utf-8")
    result = runner.invoke(cli, ["journeys", "validate", str(bad),
                                 "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 1
    assert (f"{bad}:5: steps[1].audience.add: no audience named 'cart_retargte' "
            "(audiences: cart_retarget, past_buyers; add [audiences.cart_retargte] to "
            "kanal.toml)") in result.output.splitlines()


def test_the_readme_journey_is_valid(tmp_path: Path) -> None:
    import re

    from docs_util import text_of

    page = text_of("audiences")
    block = re.search(r"```yaml\n# journeys/cart_funnel.yaml\n(.*?)```", page, re.S)
    assert block is not None
    path = write(tmp_path, "cart_funnel.yaml", block.group(1))
    (tmp_path / "kanal.toml").write_text('[audiences.cart_retarget]\ndestination = "csv"\n'
                                         'path = "x.csv"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["journeys", "validate", str(path),
                                      "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 0, result.output


def test_reload_leaves_a_journey_naming_no_audience_unloaded(tmp_path: Path) -> None:
    (tmp_path / "kanal.toml").write_text(TOML.format(dir=tmp_path), encoding="utf-8")
    journeys = tmp_path / "journeys"
    journeys.mkdir()
    write(journeys, "cart_funnel.yaml", FUNNEL)
    write(journeys, "typo.yaml", FUNNEL.replace("name: cart_funnel", "name: typo")
          .replace("{add: past_buyers", "{add: past_buyer"))
    result = CliRunner().invoke(cli, ["journeys", "reload", "--dir", str(journeys),
                                      "--db", db_at(tmp_path / "kanal.db"), "--create-db",
                                      "--config", str(tmp_path / "kanal.toml")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "cart_funnel\tv1\tnew version"
    assert (f"{journeys / 'typo.yaml'}:8: steps[1].on_event[0].audience.add: no audience "
            "named 'past_buyer' (audiences: cart_retarget, past_buyers; add "
            "[audiences.past_buyer] to kanal.toml)") in lines
    assert lines[-1] == "Error: some journey files were not loaded"
    assert not any(line.startswith("typo\t") for line in lines)
