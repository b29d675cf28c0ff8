"""Definition files (journeys, segments, messages): values YAML 1.1 and 1.2 read
differently are errors with FILE:LINE and "quote it"; stored journey versions keep being
read as they were; `segments validate` and `messages validate` report every problem with
FILE:LINE, as `journeys validate` does."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from docs_util import text_of

from kanal_collector.cli import cli
from kanal_collector.journeys import JourneyFileError, parse_journey
from kanal_collector.profiles.segments import SegmentError, load_segments_file
from kanal_collector.yamlfile import ambiguity, read


@pytest.mark.parametrize("text", [
    "NO", "no", "No", "nO", "yes", "Yes", "on", "OFF", "y", "N",   # booleans in YAML 1.1
    "01234", "007", "-012", "00.5",                                # leading zeros
    "18:00", "1:30:00", "190:20:30.15",                           # base 60
    "2026-03-01", "2026-03-01 10:00:00", "2026-03-01T10:00:00Z",  # dates and times
    "+46701234567", "+1",                                          # the + is lost
    "1_000", "1_000.5", "1e3", "1.5e3", "0b101", "0o17",          # 1.1 vs 1.2 numbers
])
def test_ambiguous_values(text: str) -> None:
    assert ambiguity(text) is not None


@pytest.mark.parametrize(("text", "read_as"), [
    ("NO", False), ("on", True), ("01234", 668), ("18:00", 1080), ("+46701234567",
                                                                    46701234567),
    ("1_000", 1000), ("0b101", 5),
])
def test_what_yaml_1_1_makes_of_them(text: str, read_as: object) -> None:
    """Why they are refused: PyYAML (YAML 1.1) reads these as something else."""
    assert yaml.safe_load(f"v: {text}")["v"] == read_as


@pytest.mark.parametrize("text", [
    "SE", "DK", "true", "false", "True", "null", "~", "0", "10", "-3", "12.50", "0.5",
    "1.5e+3", "0x1F", ".inf", "7d", "30m", "cart_reminder", "Order Completed", "nope",
    "yesterday", "NOR",
])
def test_values_read_the_same(text: str) -> None:
    assert ambiguity(text) is None


def test_quoted_values_and_keys() -> None:
    doc = read('a: "NO"\nb: \'18:00\'\non: 1\nc: |\n  yes\nd: [SE, NO]\n', source="f.yaml")
    assert [(p.line, p.where) for p in doc.problems] == [(3, "on"), (6, "d[1]")]
    assert 'quote it: "NO"' in str(doc.problems[1])
    assert str(doc.problems[1]).startswith("f.yaml:6: d[1]: NO is ambiguous")


# --- segments -------------------------------------------------------------------------


def test_the_readme_segment_keeps_norway() -> None:
    """The issue's case: `country in: [SE, NO, DK]` made NO false and left Norwegians out.
    The docs' example (docs/segments.md) now passes and means what it says."""
    text = text_of("segments")
    block = re.search(r"```yaml\n(segments:.*?)```", text, re.S)
    assert block is not None
    path = Path(__file__).parent / "_readme_segments.yaml"
    try:
        path.write_text(block.group(1), encoding="utf-8")
        segments = {s.name: s for s in load_segments_file(path)}
    finally:
        path.unlink()
    countries = segments["lapsed-big-spenders"].definition["all"][2]
    assert countries == {"trait": "country", "in": ["SE", "NO", "DK"]}


def test_unquoted_no_in_a_segments_file(tmp_path: Path) -> None:
    path = tmp_path / "segments.yaml"
    path.write_text(textwrap.dedent("""\
        segments:
          - name: nordics
            all:
              - trait: country
                in: [SE, NO, DK]
        """), encoding="utf-8")
    with pytest.raises(SegmentError) as info:
        load_segments_file(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:5: segments[0].all[0].in[1]: NO is ambiguous: YAML 1.1 reads it as true "
        'or false, YAML 1.2 as text; quote it: "NO"']


SEGMENTS = """\
segments:
  - name: a
    all:
      - event: Product Viewed
        within: soon
      - computed: nope
        gt: 1
  - name: bad name
    any:
      - trait: plan
        eq: pro
        colour: red
  - name: c
    all:
      - computed: last_seen
        older_than: 2026-01-01
"""


def test_segments_validate_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "segments.yaml"
    path.write_text(SEGMENTS, encoding="utf-8")
    result = CliRunner().invoke(cli, ["segments", "validate", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(path))]
    assert [line.split(": ")[0].removeprefix(f"{path}:") + " " + line.split(": ")[1]
            for line in lines] == [
        "5 segments[0].all[0].within",
        "6 segments[0].all[1].computed",
        "8 segments[1].name",
        "12 segments[1].any[0].colour",
        "16 segments[2].all[0].older_than",
    ]
    assert "a duration like 7d" in result.output
    assert 'quote it: "2026-01-01"' in result.output
    assert f"Error: {path}: 5 problem(s)" in result.output
    assert "Traceback" not in result.output
    # apply refuses the same file the same way, storing nothing
    db = tmp_path / "k.db"
    result = CliRunner().invoke(cli, ["segments", "apply", str(path), "--db", str(db),
                                      "--create-db"])
    assert result.exit_code == 1 and "5 problem(s)" in result.output


def test_a_json_segments_file_names_the_line_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"segments": [\n  {"name": "a",}\n]}', encoding="utf-8")
    with pytest.raises(SegmentError, match=r"s.json:2: invalid JSON"):
        load_segments_file(path)


# --- messages -------------------------------------------------------------------------


def test_messages_validate_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    d = tmp_path / "messages"
    d.mkdir()
    (d / "a.yaml").write_text(textwrap.dedent("""\
        kind: promo
        topic: offers
        colour: red
        sms:
          text: "{{ traits.name | shout }}"
        email:
          html: <p>hi</p>
        languages:
          NO:
            sms: {text: Hei}
        """), encoding="utf-8")
    (d / "b.yaml").write_text("sms:\n  text: on\n", encoding="utf-8")
    (d / "c.yaml").write_text("sms: {text: fine}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["messages", "validate", "--dir", str(d)])
    assert result.exit_code == 1
    found = [line.split(": ")[0] for line in result.output.splitlines() if ".yaml:" in line]
    assert found == [f"{d / 'a.yaml'}:{n}" for n in (1, 3, 5, 6, 9)] + [f"{d / 'b.yaml'}:2"]
    assert "No filter named 'shout'" in result.output
    assert "email.subject: required" in result.output
    assert 'quote it: "NO"' in result.output and 'quote it: "on"' in result.output
    assert "Error: 6 problem(s) in the message files of" in result.output


# --- journeys -------------------------------------------------------------------------

JOURNEY = """\
trigger:
  event: Order Completed
  where: {country: NO}
steps:
  - send: m
"""


def test_a_journey_file_with_an_unquoted_no_is_refused() -> None:
    with pytest.raises(JourneyFileError) as info:
        parse_journey(JOURNEY, source="j.yaml", name="j")
    assert [str(p) for p in info.value.problems] == [
        'j.yaml:3: trigger.where.country: NO is ambiguous: YAML 1.1 reads it as true or '
        'false, YAML 1.2 as text; quote it: "NO"']


def test_a_stored_version_is_read_as_it_always_was() -> None:
    """Runs pinned to a version loaded before this check keep running on it unchanged."""
    journey = parse_journey(JOURNEY, source="j v1", name="j", strict=False)
    assert journey.trigger["where"] == {"country": False}


def test_runs_pinned_to_a_lenient_version_go_on(tmp_path: Path) -> None:
    from journeys_util import Journeys

    from kanal_collector.store import journeys as store
    from kanal_collector.store.db import transaction

    j = Journeys(tmp_path)
    text = "trigger: {event: Signed Up}\nsteps:\n  - wait: 1h\n  - set_trait: {vip: yes}\n"
    with transaction(j.conn) as conn:  # stored by an older Kanal, before the check
        version = store.add_version(conn, "old", "h1", text, "old.yaml", j.now_ms())
        store.set_current(conn, "old", version, True, j.now_ms())
    j.person("ann")
    j.track("ann", "Signed Up")
    assert j.advance(3600) == 1
    pid = j.log.pid("ann")
    traits = j.conn.execute("SELECT state FROM profiles WHERE id = ?", (pid,)).fetchone()[0]
    assert '"vip":[true' in traits
    j.log.close()
