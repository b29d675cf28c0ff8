"""The plugin system: hooks, the plugin manager, channel configuration, `kanal plugins`."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pluggy
import pytest
from click.testing import CliRunner
from docs_util import text_of

from kanal_collector.channels import hookspecs, plugins
from kanal_collector.channels.base import Channel, OutgoingMessage, SendResult
from kanal_collector.channels.console import ConsoleChannel
from kanal_collector.channels.smtp import EmailChannel
from kanal_collector.cli import cli
from kanal_collector.config import load_config
from kanal_collector.errors import ConfigError

TESTS = Path(__file__).parent
ROOT = TESTS.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "kanal_spec"))


@pytest.fixture(autouse=True)
def fresh_manager() -> Iterator[None]:
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()


def test_there_are_hooks() -> None:
    assert HOOKS == ["check_setup", "register_channels", "register_destinations",
                     "register_settings"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_tested(hook: str) -> None:
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function)
    assert doc and len(doc.splitlines()) == 1, f"{hook} needs a one-line docstring"
    assert f"`{hook}(" in text_of("channels"), f"{hook} is not documented in docs/channels.md"
    tests = "".join(p.read_text() for pattern in ("test_channels_*.py", "test_audiences_*.py")
                    for p in TESTS.glob(pattern) if p.name != Path(__file__).name)
    assert hook in tests, f"no test outside this meta-test exercises {hook}"


def test_builtins_register_through_the_hook() -> None:
    pm = plugins.get_plugin_manager()
    assert pm is plugins.get_plugin_manager()  # one manager
    assert pm.get_plugin(plugins.BUILTIN_PLUGIN) is not None
    results = pm.hook.register_channels()
    assert ConsoleChannel in [cls for result in results for cls in result]
    assert sorted(plugins.channel_classes()) == ["console", "email", "push", "sms",
                                                 "webhook", "webpush"]


class Pager(Channel):
    name: ClassVar[str] = "pager"
    kind: ClassVar[str] = "sms"

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(provider_id="p")


class FakeEmail(Pager):
    name: ClassVar[str] = "email"


def manager_with(*plugin_objects: Any) -> pluggy.PluginManager:
    pm = plugins.new_plugin_manager(entry_points=False)
    for i, plugin in enumerate(plugin_objects):
        pm.register(plugin, name=f"test-{i}")
    return pm


class _Registers:
    def __init__(self, *classes: Any) -> None:
        self.classes = list(classes)

    @hookspecs.hookimpl
    def register_channels(self) -> list[Any]:
        return self.classes


def test_a_plugin_adds_a_channel() -> None:
    pm = manager_with(_Registers(Pager))
    assert plugins.channel_classes(pm)["pager"] is Pager


def test_duplicate_channel_names_are_a_clear_error() -> None:
    pm = manager_with(_Registers(FakeEmail))
    with pytest.raises(ConfigError, match="two plugins register a channel named 'email'") as e:
        plugins.channel_classes(pm)
    assert "test-0" in str(e.value) and "kanal.builtin" in str(e.value)


@pytest.mark.parametrize("classes,error", [
    ((object,), "not a Channel subclass"),
    (("email",), "not a Channel subclass"),
    ((type("NoKind", (Pager,), {"kind": "fax"}),), "kind must be one of"),
    ((type("Abstract", (Channel,), {"name": "abs", "kind": "sms"}),), "abstract"),
])
def test_bad_plugins_are_clear_errors(classes: tuple[Any, ...], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        plugins.channel_classes(manager_with(_Registers(*classes)))


def test_a_misspelled_hook_is_an_error() -> None:
    class Typo:
        @hookspecs.hookimpl
        def register_chanels(self) -> list[Any]:
            return []

    pm = plugins.new_plugin_manager(entry_points=False)
    pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def config(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "kanal.toml"
    path.write_text(text)
    return load_config(path, environ={})


def test_build_channels_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PW", "hunter2")
    cfg = config(tmp_path, """
[channels.email]
host = "smtp.shop.example"
from = "Shop <news@shop.example>"
username = "news"
password = { env = "SMTP_PW" }
rate_per_second = 5

[channels.marketing]
type = "email"
host = "bulk.shop.example"
from = "Shop <offers@shop.example>"

[channels.console]
path = "out.jsonl"

[channels.webhook]
enabled = false
""")
    channels = plugins.build_channels(cfg)
    assert sorted(channels) == ["console", "email", "marketing"]
    email = channels["email"]
    assert isinstance(email, EmailChannel)
    assert email.password == "hunter2"
    assert email.settings["rate_per_second"] == 5
    marketing = channels["marketing"]
    assert isinstance(marketing, EmailChannel) and marketing.name == "marketing"
    assert marketing.host == "bulk.shop.example" and "type" not in marketing.settings
    assert email.name == "email" and type(email) is EmailChannel
    for channel in channels.values():
        channel.close()


@pytest.mark.parametrize("text,error", [
    ('[channels.fax]\nnumber = "1"\n', "no channel type 'fax' is installed"),
    ('[channels.email]\nhost = "h"\nfrom = "a@b.example"\npassword = { env = "NOPE_X" }\n',
     r"\[channels.email\].password: environment variable NOPE_X is not set"),
    ('[channels.email]\nfrom = "a@b.example"\n', r"\[channels.email\]: host is required"),
    ('[channels]\nemail = 3\n', "must be a table"),
])
def test_channel_config_errors(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        plugins.build_channels(config(tmp_path, text))


def test_plugins_command(tmp_path: Path) -> None:
    path = tmp_path / "kanal.toml"
    path.write_text('[channels.console]\n\n[channels.alerts]\ntype = "console"\n\n'
                    '[channels.fax]\n')
    runner = CliRunner()
    result = runner.invoke(cli, ["plugins", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "kanal.builtin" in result.output
    assert "alerts, console" in result.output
    assert "[channels.fax] names a channel type no plugin provides" in result.output
    result = runner.invoke(cli, ["plugins", "--config", str(path), "--json"])
    data = json.loads(result.output)
    console = next(c for c in data["channels"] if c["name"] == "console")
    assert console["configured_as"] == ["alerts", "console"]
    assert data["unknown_configured"] == ["fax"]
    result = runner.invoke(cli, ["plugins", "--config", str(path), "--check"])
    assert result.exit_code == 1
    assert "no channel type 'fax'" in result.output and "Traceback" not in result.output
