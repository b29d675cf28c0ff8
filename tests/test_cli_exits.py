"""Exit codes and messages are part of the interface: a missing database is refused (a
mistyped --db never starts an empty one), bad values get plain one-line messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kanal_collector.cli import cli
from kanal_collector.cli_common import missing_database

COMMANDS = [
    ["sources", "list"], ["sources", "create", "app"], ["keys", "list"],
    ["keys", "create", "--kind", "admin"], ["events", "list"], ["events", "failed"],
    ["profiles", "show", "u1"], ["profiles", "export", "u1"], ["profiles", "rebuild"],
    ["forget", "u1", "--yes"], ["segments", "list"], ["segments", "members", "vip"],
    ["outbox"], ["journeys", "list"], ["journeys", "reload"],
    ["tracking", "keys"], ["tracking", "rotate-key"], ["report", "overview"],
    ["report", "attribution"], ["report", "journeys"], ["report", "costs"],
    ["report", "costs", "set", "channel", "sms", "5"], ["dashboard", "unlock"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_missing_database_is_refused(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "kanal-typo.db"
    result = CliRunner().invoke(cli, [*args, "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: no database at {db}: check --db"), \
        result.output
    assert "--create-db" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()


def test_import_refuses_a_missing_database_too(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("userId,plan\nu1,gold\n")
    db = tmp_path / "nope.db"
    result = CliRunner().invoke(cli, ["import", str(rows), "--db", str(db)])
    assert result.exit_code == 1 and "no database at" in result.output
    assert not db.exists()


def test_create_db_creates_it(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    result = CliRunner().invoke(cli, ["sources", "list", "--db", str(db), "--create-db"])
    assert result.exit_code == 0, result.output
    assert db.exists()
    assert CliRunner().invoke(cli, ["sources", "list", "--db", str(db)]).exit_code == 0


def test_the_environment_and_the_config_file_are_checked_too(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    result = CliRunner().invoke(cli, ["keys", "list"], env={"KANAL_DB": str(db)})
    assert result.exit_code == 1 and f"no database at {db}" in result.output
    config = tmp_path / "kanal.toml"
    config.write_text(f'db = "{tmp_path / "from-file.db"}"\n')
    result = CliRunner().invoke(cli, ["keys", "list", "--config", str(config)])
    assert result.exit_code == 1 and "from-file.db" in result.output


def test_only_file_paths_are_checked() -> None:
    assert missing_database("postgresql://kanal@db.example/kanal") is None
    assert missing_database("/nonexistent/kanal.db") is not None


def test_commands_that_need_no_database_dont_ask_for_one(tmp_path: Path) -> None:
    seg = tmp_path / "s.yaml"
    seg.write_text("segments:\n  - name: a\n    all: [{trait: plan, eq: pro}]\n")
    db = str(tmp_path / "none.db")
    (tmp_path / "messages").mkdir()
    for args in (["segments", "validate", str(seg)], ["plugins"],
                 ["messages", "validate", "--dir", str(tmp_path / "messages")]):
        result = CliRunner().invoke(cli, [*args, "--db", db])
        assert result.exit_code == 0, (args, result.output)
    assert not Path(db).exists()
