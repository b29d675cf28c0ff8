"""The `kanal` command: every command has help; keys and sources; event listing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from kanal_testing import db_at

from kanal_collector.cli import cli


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        out.append(path)
        if isinstance(command, click.Group):
            out.extend(all_commands(command, path))
    return out


@pytest.mark.parametrize("path", all_commands(cli), ids=" ".join)
def test_every_command_has_help_and_db_and_config(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command: click.Command | None = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), name)
    assert command is not None and command.help, f"kanal {' '.join(path)} has no help text"
    if not isinstance(command, click.Group):
        assert "--db" in result.output and "--config" in result.output


def run(db: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--db", db_at(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_sources_and_keys(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    run(db, "sources", "create", "app", "--create-db")
    assert "app" in run(db, "sources", "list")
    out = run(db, "keys", "create", "--kind", "public", "--source", "app", "--name", "iOS")
    key = out.strip().splitlines()[-1]
    assert key.startswith("pk_")
    listing = run(db, "keys", "list")
    assert key[:10] in listing and key not in listing  # only prefixes are shown
    assert "active" in listing
    admin = run(db, "keys", "create", "--kind", "admin").strip().splitlines()[-1]
    assert admin.startswith("ak_")
    assert "Revoked public key" in run(db, "keys", "revoke", key[:10] + "…")
    assert "revoked" in run(db, "keys", "list")


@pytest.mark.parametrize("args,message", [
    (["keys", "create", "--kind", "public", "--source", "nope"], "no source named 'nope'"),
    (["keys", "revoke", "pk_unknown"], "no key matches"),
    (["sources", "create", "app"], "already exists"),
])
def test_cli_errors_are_clear(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "k.db"
    run(db, "sources", "create", "app", "--create-db")
    result = CliRunner().invoke(cli, [*args, "--db", db_at(db)])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    result = CliRunner().invoke(cli, ["keys", "list", "--config", str(bad)])
    assert result.exit_code == 1
    assert "port" in result.output


def test_events_list_and_failed(tmp_path: Path) -> None:
    from kanal_testing import make_app

    env = make_app(tmp_path / "k.db")
    env.client.post("/v1/track", json={"userId": "u9", "event": "Signed Up"},
                    auth=(env.keys["secret"], ""))
    env.client.post("/v1/track", json={"userId": "u9"}, auth=(env.keys["secret"], ""))
    from kanal_collector.app import close_app

    close_app(env.app)
    assert "Signed Up\tu9" in run(tmp_path / "k.db", "events", "list")
    assert '"event": "Signed Up"' in run(tmp_path / "k.db", "events", "list", "--json")
    assert "track needs an event name" in run(tmp_path / "k.db", "events", "failed")


def test_python_dash_m_is_the_kanal_command() -> None:
    out = subprocess.run([sys.executable, "-m", "kanal_collector", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "serve" in out and "keys" in out


def test_a_report_imports_only_what_it_needs(tmp_path: Path) -> None:
    """`kanal report …` imports the reports, not every part's commands (cli_lazy.py) nor
    what sending needs: the channel plugins, the dispatcher, Flask, Jinja, DNS
    (exports.py)."""
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from kanal_collector.cli import cli\n"
            "for cmd in (['overview'], ['attribution'], ['journeys'], ['experiments'],\n"
            "            ['recommendations'], ['deliverability'], ['costs']):\n"
            f"    args = ['report', *cmd, '--db', {str(tmp_path / 'k.db')!r}, '--create-db']\n"
            "    assert CliRunner().invoke(cli, args).exit_code == 0, cmd\n"
            "    if cmd == ['experiments']:  # the recommendations report is in cli_products\n"
            "        assert 'kanal_collector.cli_products' not in sys.modules\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(('kanal_collector.dashboard',"
            " 'kanal_collector.cli_audiences', 'user_agents',"
            " 'scipy', 'numpy', 'kanal_collector.channels.plugins',"
            " 'kanal_collector.messages.dispatcher', 'flask', 'jinja2', 'dkim', 'dns',"
            " 'requests')))\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_lazy_command_is_the_command_of_its_name() -> None:
    from kanal_collector.cli_lazy import LazyGroup

    groups = [cli, cli.get_command(click.Context(cli), "report")]
    for group in groups:
        assert isinstance(group, LazyGroup)
        for name in group.lazy:
            assert group.load(name).name == name
