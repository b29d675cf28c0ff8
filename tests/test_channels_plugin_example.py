"""examples/chat_channel: a third-party plugin found through its `kanal` entry point."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses

from kanal_collector.channels import OutgoingMessage, PermanentError, TransientError, plugins
from kanal_collector.channels.netguard import set_resolver
from kanal_collector.config import load_config
from kanal_collector.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "examples" / "chat_channel"
HOOK_URL = "https://hooks.chat.example/services/T0/B0/xyz"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example as if pip-installed: its package and a dist-info with its entry points
    (read from its own pyproject.toml) on sys.path, as importlib.metadata finds them."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist = tmp_path / f"kanal_chat-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    lines = ["[kanal]"] + [f"{k} = {v}" for k, v in project["entry-points"]["kanal"].items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    plugins.reset_plugin_manager()
    yield
    plugins.reset_plugin_manager()
    sys.modules.pop("kanal_chat", None)


@pytest.fixture
def public_dns() -> Iterator[None]:
    old = set_resolver(lambda host, port: ["93.184.216.34"])
    yield
    set_resolver(old)


def test_entry_point_plugin_is_loaded(installed: None, tmp_path: Path) -> None:
    import kanal_chat

    classes = plugins.channel_classes()
    assert classes["chat"] is kanal_chat.ChatChannel
    summary = plugins.plugin_summary()
    chat = next(p for p in summary["plugins"] if p["name"] == "chat")
    assert (chat["distribution"], chat["version"]) == ("kanal-chat", "0.1.0")
    assert chat["hooks"] == ["register_channels", "register_settings"]
    (tmp_path / "kanal.toml").write_text(f'[channels.chat]\nwebhook_url = "{HOOK_URL}"\n')
    channels = plugins.build_channels(load_config(tmp_path / "kanal.toml", environ={}))
    assert isinstance(channels["chat"], kanal_chat.ChatChannel)
    channels["chat"].close()
    # its settings are declared (register_settings), so its tables are checked
    (tmp_path / "kanal.toml").write_text(f'[channels.chat]\nwebhook_url = "{HOOK_URL}"\n'
                                         'usrname = "shop"\n')
    with pytest.raises(ConfigError, match="unknown key channels.chat.usrname .channel type "
                                          "chat.; did you mean username"):
        plugins.build_channels(load_config(tmp_path / "kanal.toml", environ={}))


def test_a_plugin_that_fails_to_import_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[kanal]\nbroken = kanal_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset_plugin_manager()
    try:
        with pytest.raises(ConfigError, match="failed to load.*kanal_no_such_module"):
            plugins.get_plugin_manager()
    finally:
        plugins.reset_plugin_manager()


def message(text: str = "New order #1001: 3 items") -> OutgoingMessage:
    return OutgoingMessage(outbox_id=1, idempotency_key="k", recipient="",
                           content={"text": text})


@responses.activate
def test_chat_channel_posts_text(installed: None, public_dns: None) -> None:
    from kanal_chat import ChatChannel

    responses.post(HOOK_URL, body="ok")
    chat = ChatChannel({"webhook_url": HOOK_URL, "username": "Kanal"})
    chat.send(message())
    body = responses.calls[0].request.body
    assert isinstance(body, bytes)
    assert json.loads(body) == {"text": "New order #1001: 3 items", "username": "Kanal"}
    chat.close()


@responses.activate
@pytest.mark.parametrize("status,error", [(404, PermanentError), (410, PermanentError),
                                          (429, TransientError), (500, TransientError)])
def test_chat_channel_errors(installed: None, public_dns: None, status: int,
                             error: type[Exception]) -> None:
    from kanal_chat import ChatChannel

    responses.post(HOOK_URL, status=status, body="channel_not_found")
    with pytest.raises(error, match=str(status)):
        ChatChannel({"webhook_url": HOOK_URL}).send(message())


def test_chat_channel_refuses_private_webhooks(installed: None) -> None:
    from kanal_chat import ChatChannel

    old = set_resolver(lambda host, port: ["10.0.0.7"])
    try:
        with pytest.raises(PermanentError, match="refused"):
            ChatChannel({"webhook_url": HOOK_URL}).send(message())
    finally:
        set_resolver(old)
    with pytest.raises(ValueError, match="https"):
        ChatChannel({"webhook_url": "http://hooks.chat.example/"})
