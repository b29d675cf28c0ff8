"""Channel settings declared through the `register_settings` hook: `[channels.NAME]`
tables are checked like the rest of kanal.toml (unknown keys name the nearest known one,
values of the wrong type get plain messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pluggy
import pytest

from kanal_collector.channels import (
    Channel,
    OutgoingMessage,
    SendResult,
    builtin,
    hookspecs,
    plugins,
)
from kanal_collector.config import Config, load_config
from kanal_collector.config_keys import Key
from kanal_collector.errors import ConfigError


def config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "kanal.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def test_every_builtin_type_declares_its_settings() -> None:
    declared = plugins.channel_settings(plugins.new_plugin_manager(entry_points=False))
    assert sorted(declared) == ["console", "email", "push", "sms", "webhook",
                                "webpush"]
    assert {k.name for k in declared["email"]} >= {"host", "port", "tls", "from", "password"}
    assert all(k.description for keys in declared.values() for k in keys)


@pytest.mark.parametrize(("table", "message"), [
    ('[channels.email]\nhost = "smtp.example.com"\nfrom = "a@example.com"\nprot = 25\n',
     "unknown key channels.email.prot (channel type email); did you mean port?"),
    ('[channels.marketing]\ntype = "email"\nhost = "h"\nfrom = "a@example.com"\n'
     'pasword = "x"\n',
     "unknown key channels.marketing.pasword (channel type email); did you mean password?"),
    ('[channels.email]\nhost = "h"\nfrom = "a@example.com"\nport = "twenty-five"\n',
     "channels.email.port: a whole number, not 'twenty-five'"),
    ('[channels.sms]\ntype = "console"\nwhatever = 1\n',
     "unknown key channels.sms.whatever (channel type console); a console channel takes "
     "enabled, path, rate_burst, rate_per_second, stands_in_for, type"),
    ('[channels.webhook]\nurl = "https://x.example"\nsecret = "s"\nallow_private = "yes"\n',
     "channels.webhook.allow_private: true or false, not 'yes'"),
    ('[channels.email]\nhost = "h"\nfrom = "a@example.com"\nrate_per_second = 0\n',
     "channels.email.rate_per_second: a number of at least 0.001, not 0"),
])
def test_channel_tables_are_checked(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        plugins.build_channels(config(tmp_path, table),
                               plugins.new_plugin_manager(entry_points=False))
    assert str(info.value) == message


def test_secrets_from_the_environment_are_accepted_for_any_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    conf = config(tmp_path, '[channels.email]\nhost = { env = "SMTP_HOST" }\n'
                            'from = "a@example.com"\npassword = { env = "SMTP_PASSWORD" }\n')
    channels = plugins.build_channels(conf, plugins.new_plugin_manager(entry_points=False))
    assert channels["email"].password == "pw"  # type: ignore[attr-defined]
    channels["email"].close()


class Pager(Channel):
    name: ClassVar[str] = "pager"
    kind: ClassVar[str] = "sms"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult()


class _Declares:
    @hookspecs.hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [Pager]

    @hookspecs.hookimpl
    def register_settings(self) -> list[Key]:
        return [Key("channels.pager.api_key", "secret", None, "The API key.")]


class _Silent:
    @hookspecs.hookimpl
    def register_channels(self) -> list[type[Channel]]:
        return [Pager]


def _manager(plugin: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("kanal")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=plugins.BUILTIN_PLUGIN)
    pm.register(plugin, name="pager")
    return pm


def test_a_third_party_plugin_declares_its_settings(tmp_path: Path) -> None:
    good = config(tmp_path, '[channels.pager]\napi_key = "k"\n')
    assert "pager" in plugins.build_channels(good, _manager(_Declares()))
    bad = config(tmp_path, '[channels.pager]\napi_kye = "k"\n')
    with pytest.raises(ConfigError, match="channels.pager.api_kye .* did you mean api_key"):
        plugins.build_channels(bad, _manager(_Declares()))
    # a plugin that declares nothing: its tables can't be checked, and aren't
    assert "pager" in plugins.build_channels(bad, _manager(_Silent()))


def test_a_setting_must_be_named_for_a_channel_type() -> None:
    class Wrong:
        @hookspecs.hookimpl
        def register_settings(self) -> list[Key]:
            return [Key("pager.api_key", "string", None, "x")]

    with pytest.raises(ConfigError, match="must be named channels.TYPE.NAME"):
        plugins.channel_settings(_manager(Wrong()))
