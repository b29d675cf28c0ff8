"""Configuration precedence and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanal_collector.config import Config, load_config, resolve_secret
from kanal_collector.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kanal.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(None, environ={"KANAL_CONFIG_UNUSED": str(tmp_path)})
    assert config.db == "kanal.db"
    assert (config.host, config.port, config.synchronous) == ("127.0.0.1", 8000, "FULL")


def test_precedence_flags_env_file_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, 'db = "file.db"\n[server]\nport = 9000\nthreads = 4\n'
                           '[ingest]\nanonymize_ip = true\n')
    config = load_config(path, environ={"KANAL_PORT": "9100", "KANAL_DB": "env.db"},
                         overrides={"db": "flag.db", "host": None})
    assert config.db == "flag.db"        # flag beats environment
    assert config.port == 9100                 # environment beats file
    assert config.threads == 4                 # file beats default
    assert config.anonymize_ip is True
    assert config.host == "127.0.0.1"          # a flag left out changes nothing


def test_config_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 1234\n")
    assert load_config(environ={"KANAL_CONFIG": str(path)}).port == 1234


@pytest.mark.parametrize("text,message", [
    ("[server]\nport = 'x'\n", "port"),
    ("[server]\nport = 70000\n", "a whole number from 0 to 65535, not 70000"),
    ("[storage]\nsynchronous = 'OFF'\n", "synchronous"),
    ("[server]\ntrusted_proxies = ['not-a-net']\n", "trusted_proxies"),
    ("[ingest]\nanonymize_ip = 'maybe'\n", "ingest.anonymize_ip: true or false, not 'maybe'"),
    ("this is = not toml [", "kanal.toml"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), environ={})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_secrets_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    assert resolve_secret({"env": "SMTP_PASSWORD"}) == "hunter2"
    assert resolve_secret("plain") == "plain"
    monkeypatch.delenv("SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="SMTP_PASSWORD"):
        resolve_secret({"env": "SMTP_PASSWORD"})


def test_sections_are_kept_for_later_parts(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[channels.email]\nhost = 'smtp.example'\n"),
                         environ={})
    assert config.section("channels")["email"]["host"] == "smtp.example"
    assert Config().section("privacy") == {}


def test_a_postgresql_url_is_kept_as_written(tmp_path: Path) -> None:
    url = "postgresql://kanal:s3cret@db.internal:5432/kanal?sslmode=require"
    path = write(tmp_path, f'db = "{url}"\n')
    assert load_config(path, environ={}).db == url
    assert load_config(environ={"KANAL_DB": url}).db == url
    assert load_config(environ={}, overrides={"db": url}).db == url
