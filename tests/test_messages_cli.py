"""`kanal messages validate|list|preview`, and the dispatcher wired into `kanal serve`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from kanal_testing import db_at
from messages_util import World

from kanal_collector.cli import cli

WELCOME = """\
kind: marketing
topic: news
defaults: {first_name: there}
email:
  subject: "Hi {{ traits.first_name }}"
  html: "<p>{{ traits.first_name }} &amp; {{ data.code }}</p>"
  text: "Hi {{ traits.first_name }}"
sms:
  text: "Hi {{ traits.first_name }}"
languages:
  sv:
    email: {subject: "Hej {{ traits.first_name }}"}
"""


def messages_dir(tmp_path: Path) -> Path:
    d = tmp_path / "messages"
    d.mkdir()
    (d / "welcome.yaml").write_text(WELCOME, encoding="utf-8")
    return d


def test_validate_and_list(tmp_path: Path) -> None:
    d = messages_dir(tmp_path)
    db = db_at(tmp_path / "k.db")
    ok = CliRunner().invoke(cli, ["messages", "validate", "--dir", str(d), "--db", db])
    assert ok.exit_code == 0, ok.output
    assert "1 message(s) OK" in ok.output
    listing = CliRunner().invoke(cli, ["messages", "list", "--dir", str(d), "--db", db])
    assert "welcome\tmarketing\tnews\tconsole,email,sms\ten,sv" in listing.output
    (d / "bad.yaml").write_text("sms: {text: '{{ traits.x | nope }}'}\n", encoding="utf-8")
    bad = CliRunner().invoke(cli, ["messages", "validate", "--dir", str(d), "--db", db])
    assert bad.exit_code == 1
    assert "bad.yaml" in bad.output and "No filter named 'nope'" in bad.output
    assert "Traceback" not in bad.output


def test_messages_dir_from_config(tmp_path: Path) -> None:
    d = messages_dir(tmp_path)
    config = tmp_path / "kanal.toml"
    config.write_text(f"db = '{tmp_path / 'k.db'}'\n[messages]\nmessages_dir = '{d}'\n")
    ok = CliRunner().invoke(cli, ["messages", "validate", "--config", str(config)])
    assert ok.exit_code == 0, ok.output
    assert str(d) in ok.output


def test_preview_for_a_real_profile(tmp_path: Path) -> None:
    world = World(tmp_path / "kanal.db")
    world.person("u1", email="ann@example.com", first_name="<Ann>", language="sv-SE",
                 subscriptions={"email": {"news": False}})
    world.close()
    d = messages_dir(tmp_path)
    result = CliRunner().invoke(cli, [
        "messages", "preview", "welcome", "ann@example.com", "--dir", str(d),
        "--data", '{"code": "X1"}', "--db", db_at(tmp_path / "kanal.db")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "recipient: ann@example.com" in out
    assert "language:  sv" in out
    assert "would send: no, unsubscribed" in out
    assert "Hej <Ann>" in out
    assert "<p>&lt;Ann&gt; &amp; X1</p>" in out
    sms = CliRunner().invoke(cli, [
        "messages", "preview", "welcome", "u1", "--channel", "sms", "--language", "en",
        "--dir", str(d), "--db", db_at(tmp_path / "kanal.db")])
    assert "recipient: -" in sms.output and "would send: no, no recipient" in sms.output
    assert "Hi <Ann>" in sms.output
    nobody = CliRunner().invoke(cli, [
        "messages", "preview", "welcome", "nobody", "--dir", str(d),
        "--db", db_at(tmp_path / "kanal.db")])
    assert nobody.exit_code == 1 and "no profile has the identity 'nobody'" in nobody.output


def test_create_app_runs_a_dispatcher(tmp_path: Path) -> None:
    from kanal_collector.app import close_app, create_app
    from kanal_collector.config import load_config

    config = load_config(overrides={"db": db_at(tmp_path / "k.db")}, environ={})
    app = create_app(config)
    try:
        names = [w.name for w, _ in app.extensions["kanal.supervisor"].workers]
        assert "dispatcher" in names
    finally:
        close_app(app)
