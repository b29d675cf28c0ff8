"""The one registry of kanal.toml settings: unknown tables and keys are errors naming the
nearest known one, bad values get plain messages, and the docs' own examples pass."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from docs_util import all_text
from kanal_testing import db_at

from kanal_collector.audiences import plugins as destinations
from kanal_collector.channels import plugins
from kanal_collector.cli import cli
from kanal_collector.config import Config, load_config
from kanal_collector.config_keys import (
    AUDIENCE_COMMON,
    CHANNEL_COMMON,
    CORE,
    check_document,
    check_plugin_table,
    reference,
)
from kanal_collector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def load(tmp_path: Path, text: str, **environ: str) -> Config:
    path = tmp_path / "kanal.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=environ)


@pytest.mark.parametrize(("text", "message"), [
    ("[sever]\nport = 80\n", "unknown table [sever]; did you mean [server]?"),
    ("[server]\nprot = 80\n", "unknown key server.prot in [server]; did you mean server.port?"),
    ("dbb = 'k.db'\n", "unknown key dbb in the top of the file; did you mean db?"),
    ("[frequency]\nper_dya = 3\n",
     "unknown key frequency.per_dya in [frequency]; did you mean frequency.per_day?"),
    ("[frequency.sms]\nper_wek = 3\n",
     "unknown key frequency.sms.per_wek in [frequency.sms]; did you mean "
     "frequency.sms.per_week?"),
    ("[costs.chanel]\nsms = 3\n", "unknown table [costs.chanel]; did you mean [costs.channel]?"),
    ("[zzz]\na = 1\n", "unknown table [zzz]; known: attribution, audiences, channels"),
    ("[audiences]\nads = 3\n", "[audiences.ads] must be a table"),
    ("[server]\nport = \"eighty\"\n", "server.port: a whole number from 0 to 65535, not "
                                      "'eighty'"),
    ("[server]\nthreads = 0\n", "server.threads: a whole number of at least 1, not 0"),
    ("[storage]\nsynchronous = \"OFF\"\n", "storage.synchronous: one of FULL, NORMAL, EXTRA, "
                                           "not 'OFF'"),
    ("[costs.channel]\nsms = -5\n", "costs.channel.sms: a number of at least 0, not -5"),
    ("[profiles]\ndefault_country = \"Sweden\"\n",
     "profiles.default_country: a two-letter country code like \"SE\", not 'Sweden'"),
    ("[messages]\nopt_in = \"sms\"\n", "messages.opt_in: a list of strings, not 'sms'"),
    ("[channels]\nemail = 3\n", "[channels.email] must be a table"),
])
def test_plain_messages(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'kanal.toml'}: {message}"), str(info.value)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[server]\nprot = 1\nport = 'x'\n[sever]\n")
    assert len(str(info.value).splitlines()) == 3


def test_environment_values_get_plain_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^KANAL_PORT: a whole number from 0 to 65535, "
                                          "not 'eighty'$"):
        load(tmp_path, "", KANAL_PORT="eighty")
    assert load(tmp_path, "", KANAL_PORT="8080").port == 8080
    assert load(tmp_path, "[server]\nport = \"8081\"\n").port == 8081


def test_serve_says_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "kanal.toml"
    path.write_text('[server]\nport = "eighty"\n')
    result = CliRunner().invoke(cli, ["serve", "--config", str(path),
                                      "--db", db_at(tmp_path / "k.db")])
    assert result.exit_code == 1
    assert result.output == (f"Error: {path}: server.port: a whole number from 0 to 65535, "
                             "not 'eighty'\n")
    result = CliRunner().invoke(cli, ["serve", "--port", "eighty"])
    assert result.exit_code == 2 and "'eighty' is not a valid integer" in result.output


def _readme_tomls() -> list[str]:
    """The toml examples of the README and of every page of docs/."""
    text = all_text()
    return [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "[project" not in b]


def test_the_readme_examples_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _readme_tomls()
    assert len(blocks) >= 10
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    pm = plugins.new_plugin_manager(entry_points=False)
    for block in blocks:
        data = tomllib.loads(block)
        assert check_document(data, (*CORE, *CHANNEL_COMMON, *AUDIENCE_COMMON)) == [], block
        for name, table in data.get("audiences", {}).items():
            kind = table["destination"]
            declared = destinations.destination_settings(pm)[kind]
            assert check_plugin_table("audiences", name, table, kind, declared,
                                      AUDIENCE_COMMON, "destination") == [], block
        if "channels" in data:
            conf = Config(sections=data)
            declared = plugins.channel_settings(plugins.new_plugin_manager(entry_points=False))
            from kanal_collector.config_keys import check_channel_table

            for name, table in data["channels"].items():
                kind = str(table.get("type", name))
                assert check_channel_table(name, table, kind, declared[kind]) == [], block
            assert conf.section("channels")


def test_the_examples_configs_are_valid() -> None:
    for path in ROOT.glob("examples/**/kanal.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert check_document(data, (*CORE, *CHANNEL_COMMON, *AUDIENCE_COMMON)) == [], path


def test_every_key_is_documented_in_the_registry() -> None:
    rows = list(reference((*CORE, *CHANNEL_COMMON, *AUDIENCE_COMMON)))
    assert len(rows) == len(CORE) + len(CHANNEL_COMMON) + len(AUDIENCE_COMMON)
    assert all(description.endswith(".") for _, _, _, description in rows)
    assert ("server.port", "integer", "8000", "The port to listen on (0 picks a free one).") \
        in rows
    assert len({path for path, *_ in rows}) == len(rows)
    # every table the docs' examples show is a table the registry knows
    tables = {path.split(".")[0] for path, *_ in rows}
    for block in _readme_tomls():
        assert set(tomllib.loads(block)) <= tables | {"db", "journeys_dir"}, block
