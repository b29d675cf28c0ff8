"""Journey files: validation with line numbers, the examples, versions, the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from journeys_util import Journeys
from kanal_testing import db_at

from kanal_collector.cli import cli
from kanal_collector.journeys import JourneyFileError, load_directory, parse_journey
from kanal_collector.journeys.definition import journey_files, load_file
from kanal_collector.messages.catalog import load_directory as load_messages

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

GOOD = """\
name: cart
trigger: {event: Product Added}
steps:
  - wait: 1h
  - send: cart
    channel: email
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(JourneyFileError) as info:
        parse_journey(textwrap.dedent(text), source="j.yaml", name="j")
    return [(p.line, p.where, p.message) for p in info.value.problems]


def test_a_good_file_compiles_to_linked_steps() -> None:
    journey = parse_journey(GOOD)
    assert journey.first == "1"
    assert journey.steps["1"].next == "2"
    assert journey.steps["2"].next is None
    assert journey.messages() == {"cart"}
    assert journey.entry == {"rule": "once"}


def test_branches_continue_after_their_step() -> None:
    journey = parse_journey(textwrap.dedent("""\
        trigger: {event: A}
        steps:
          - wait_for: {event: B, timeout: 1h}
            on_timeout:
              - send: m
          - send: m2
        """), name="j")
    wait = journey.steps["1"]
    assert wait.branches == {"event": "2", "timeout": "1.timeout.1"}
    assert journey.steps["1.timeout.1"].next == "2"


@pytest.mark.parametrize(("text", "line", "where", "words"), [
    ("trigger: {event: A}\nsteps:\n  - wait: soon\n", 3, "steps[0].wait", "duration"),
    ("trigger: {event: A}\nsteps:\n  - send: m\n  - sleep: 1h\n", 4, "steps[1]",
     "exactly one of"),
    ("trigger: {event: A}\nsteps:\n  - send: m\n    chanel: email\n", 4,
     "steps[0].chanel", "unknown field"),
    ("trigger: {segment: 3}\nsteps: []\n", 1, "trigger.segment", "segment name"),
    ("trigger: {event: A}\nentry:\n  rule: twice\nsteps: []\n", 3, "entry.rule",
     "once, every_time, once_per"),
    ("trigger: {event: A}\nentry: {rule: once_per}\nsteps: []\n", 2, "entry.period",
     "duration"),
    ("trigger: {event: A}\nsteps:\n  - if: {trait: x, bigger: 3}\n    then: []\n", 3,
     "steps[0].if", "operator"),
    ("trigger: {event: A}\nsteps:\n  - wait_for: {event: B}\n", 3, "steps[0].wait_for",
     "timeout"),
    ("trigger:\n  schedule: {every: 1d, at: '25:00'}\n  audience: {trait: x, eq: 1}\n"
     "steps: []\n", 2, "trigger.schedule.at", "time of day"),
    ("trigger: {event: A}\nsteps:\n  - id: a\n    wait: 1h\n  - id: a\n    wait: 1h\n",
     5, "steps[1].id", "twice"),
    ("trigger: {event: A}\nsteps:\n  - split:\n      holdout: 100\n      arms: [{name: a}]\n",
     4, "steps[0].split.holdout", "percentage"),
    ("trigger: {event: A}\nsteps:\n  - webhook: {url: ftp://x}\n", 3,
     "steps[0].webhook.url", "http"),
    ("trigger: {event: A}\ngoal: {event: B, within: forever}\nsteps: []\n", 2,
     "goal.within", "duration"),
])
def test_errors_name_the_line_and_field(text: str, line: int, where: str,
                                        words: str) -> None:
    found = problems(text)
    assert any(p[0] == line and p[1] == where and words in p[2] for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems("trigger: {event: A}\nsteps:\n  - wait: x\n  - wait: y\n")
    assert [p[0] for p in found] == [3, 4]


def test_yaml_errors_carry_their_line() -> None:
    found = problems("trigger: {event: A}\nsteps:\n  - wait: [1h\n  - send: m\n")
    assert found[0][0] is not None and "invalid YAML" in found[0][2]


def test_unknown_messages_are_reported_when_the_catalog_is_known() -> None:
    with pytest.raises(JourneyFileError) as info:
        parse_journey(GOOD, messages={"other"})
    assert info.value.problems[0].line == 5
    assert "no message named 'cart'" in str(info.value)


def test_the_examples_are_valid_and_use_existing_messages() -> None:
    names = set(load_messages(EXAMPLES / "messages"))
    files = journey_files(EXAMPLES / "journeys")
    assert {f.stem for f in files} >= {"welcome", "abandoned_cart", "post_purchase",
                                       "win_back"}
    for path in files:
        journey = load_file(path, messages=names)
        assert journey.messages() <= names
    journeys, problems_ = load_directory(EXAMPLES / "journeys")
    assert problems_ == [] and len(journeys) == len(files)


def test_a_changed_file_is_a_new_version_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    env = Journeys(tmp_path)
    try:
        env.write("cart", GOOD)
        assert env.sync().loaded == [("cart", 1, True)]
        assert env.sync().loaded == [("cart", 1, False)]
        env.write("cart", GOOD.replace("1h", "2h"))
        assert env.sync().loaded == [("cart", 2, True)]
        env.write("cart", "trigger: [broken\n")
        result = env.sync()
        assert result.problems and result.loaded == []
        from kanal_collector.store import journeys as store

        assert store.current(env.conn) == [("cart", 2, True)]  # the broken edit waits
        (env.dir / "cart.yaml").unlink()
        assert env.sync().disabled == ["cart"]
        assert store.current(env.conn) == [("cart", 2, False)]
    finally:
        env.close()


def test_cli_validate_prints_file_line_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trigger: {event: A}\nsteps:\n  - wait: soon\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    runner = CliRunner()
    result = runner.invoke(cli, ["journeys", "validate", str(good), str(bad),
                                 "--db", db_at(tmp_path / "k.db")])
    assert result.exit_code == 1
    assert f"{bad}:3: steps[0].wait:" in result.output
    assert f"{good}: OK" in result.output


def test_cli_reload_and_list(tmp_path: Path) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "cart.yaml").write_text(GOOD)
    runner = CliRunner()
    db = ["--db", db_at(tmp_path / "k.db")]
    result = runner.invoke(cli, ["journeys", "reload", "--dir", str(folder), *db, "--create-db"])
    assert result.exit_code == 0, result.output
    assert "cart\tv1\tnew version" in result.output
    result = runner.invoke(cli, ["journeys", "list", *db])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("cart\tv1\tenabled\tno runs")


@pytest.mark.parametrize("command", ["validate", "list", "reload"])
def test_journeys_commands_have_help_and_db_config(command: str) -> None:
    result = CliRunner().invoke(cli, ["journeys", command, "--help"])
    assert result.exit_code == 0
    assert "--db" in result.output and "--config" in result.output


def test_journeys_exports_are_sorted_and_resolve() -> None:
    import kanal_collector.journeys as journeys

    assert journeys.__all__ == sorted(journeys.__all__)
    assert all(getattr(journeys, name) is not None for name in journeys.__all__)
