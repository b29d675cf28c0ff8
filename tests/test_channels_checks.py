"""Setup checks (setup_checks.run_checks): what `kanal plugins --check` and the
dashboard's Settings page show — every channel table, every audience destination, and
each plugin's `check_setup` hook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kanal_collector.channels import hookspecs, plugins
from kanal_collector.channels.checks import Check
from kanal_collector.cli import cli
from kanal_collector.config import Config
from kanal_collector.setup_checks import run_checks

CHANNELS = {"console": {}, "alerts": {"type": "console"}, "fax": {},
            "mail": {"type": "email", "host": "smtp.example", "from": "shop@example.com",
                     "password": {"env": "KANAL_TEST_NO_SUCH_VARIABLE"}},
            "old": {"type": "sms", "enabled": False}}


class Inventory:
    """A plugin that checks something of its own through the hook."""

    @hookspecs.hookimpl
    def check_setup(self, config: Config) -> list[Check]:
        found = config.public_url
        return [Check("inventory", "feed", bool(found), found or "public_url is missing")]


class Broken:
    @hookspecs.hookimpl
    def check_setup(self, config: Config) -> list[Check]:
        raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def fresh_manager() -> Iterator[None]:
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {f"{c.what}/{c.name}": c for c in checks}


def test_one_result_per_channel_table() -> None:
    found = by_name(run_checks(Config(sections={"channels": CHANNELS})))
    assert found["channel/console"] == Check("channel", "console", True, "console, kind console")
    assert found["channel/alerts"].ok and found["channel/old"].detail == "sms, disabled"
    assert not found["channel/fax"].ok and "no channel type 'fax'" in found["channel/fax"].detail
    assert not found["channel/mail"].ok
    assert "KANAL_TEST_NO_SUCH_VARIABLE is not set" in found["channel/mail"].detail


def test_plugins_add_checks_through_the_hook() -> None:
    pm = plugins.new_plugin_manager(entry_points=False)
    pm.register(Inventory(), name="inventory")
    pm.register(Broken(), name="broken")
    found = by_name(run_checks(Config(public_url="https://x.example"), pm))
    assert found["inventory/feed"] == Check("inventory", "feed", True, "https://x.example")
    assert found["plugin/broken"] == Check("plugin", "broken", False,
                                           "check_setup failed: RuntimeError: boom")
    assert not by_name(run_checks(Config(), pm))["inventory/feed"].ok


def test_the_cli_check_fails_with_every_problem(tmp_path: Path, monkeypatch: Any) -> None:
    pm = plugins.get_plugin_manager()
    pm.register(Inventory(), name="inventory")
    path = tmp_path / "kanal.toml"
    path.write_text('[channels.console]\n\n[channels.fax]\n')
    result = CliRunner().invoke(cli, ["plugins", "--config", str(path), "--check"])
    assert result.exit_code == 1
    assert "no channel type 'fax'" in result.output
    assert "public_url is missing" in result.output and "Traceback" not in result.output
    path.write_text('[server]\npublic_url = "https://x.example"\n[channels.console]\n')
    result = CliRunner().invoke(cli, ["plugins", "--config", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.endswith("All configured channels and audiences are valid.\n")
