"""Configuration: command-line flags, then KANAL_* variables, then kanal.toml, then defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config_keys import CHANNEL_COMMON, CORE, Key, check_document, check_value
from .errors import ConfigError

DEFAULT_CONFIG_FILE = "kanal.toml"

# The settings that are Config fields (config_keys.CORE: table, key, environment).
_FIELD_KEYS: dict[str, Key] = {k.field: k for k in CORE if k.field}


@dataclass(frozen=True)
class Config:
    """Everything the collector reads at start; built once and passed in."""

    db: str = "kanal.db"
    """A SQLite file, or a PostgreSQL URL (postgresql://user@host/name)."""
    journeys_dir: Path = Path("journeys")
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 16
    public_url: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    anonymize_ip: bool = False
    rate_limit: float = 200.0
    rate_burst: float = 400.0
    synchronous: str = "FULL"
    busy_timeout: float = 10.0
    poll_interval: float = 1.0
    lease_seconds: float = 15.0
    run_workers: bool = True
    sections: Mapping[str, Any] = field(default_factory=dict)
    """The whole file, for parts that read their own tables (channels, privacy, …)."""

    def __post_init__(self) -> None:
        if self.synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise ConfigError(f"storage.synchronous must be FULL, NORMAL or EXTRA, "
                              f"not {self.synchronous!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"server.port must be 0-65535, not {self.port}")
        if self.threads < 1:
            raise ConfigError("server.threads must be at least 1")
        if self.rate_limit < 0 or self.rate_burst < 0:
            raise ConfigError("ingest.rate_limit and ingest.rate_burst must not be negative")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"server.trusted_proxies: {exc}") from None

    def section(self, name: str) -> Mapping[str, Any]:
        """One table of the config file (empty when absent)."""
        value = self.sections.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        return value


def _from_env(key: Key, text: str) -> Any:
    """An environment variable's text as the key's type (left as is when it can't be:
    the check then says what was expected)."""
    try:
        if key.type == "integer":
            return int(text)
        if key.type == "number":
            return float(text)
    except ValueError:
        return text
    if key.type == "boolean":
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
    if key.type == "strings":
        return [v.strip() for v in text.split(",") if v.strip()]
    return text


def _coerce(name: str, value: Any, where: str) -> Any:
    """A file or environment value as the Config field's type; ConfigError with a plain
    message (`server.port: a whole number from 0 to 65535, not 'eighty'`) otherwise."""
    key = _FIELD_KEYS[name]
    if key.type in ("integer", "number") and isinstance(value, str):
        value = _from_env(key, value.strip())  # port = "8000" means 8000
    problem = check_value(key, value, where)
    if problem:
        raise ConfigError(problem)
    if key.type == "path":
        return Path(str(value))
    if key.type == "number":
        return float(value)
    if key.type == "strings":
        return tuple(str(v) for v in value)
    if key.type == "url":
        return None if value in (None, "") else str(value)
    return value


def resolve_secret(value: Any) -> Any:
    """Resolve `{ env = "NAME" }` to that environment variable's value, on read."""
    if isinstance(value, Mapping) and set(value) == {"env"}:
        name = value["env"]
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set")
        return os.environ[name]
    return value


def load_config(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the Config: `overrides` (flags) > KANAL_* environment > file > defaults.

    `path` is the config file; without it KANAL_CONFIG, then ./kanal.toml if present.
    """
    env = os.environ if environ is None else environ
    explicit = path is not None or "KANAL_CONFIG" in env
    file_path = Path(path if path is not None else env.get("KANAL_CONFIG", DEFAULT_CONFIG_FILE))
    data: dict[str, Any] = {}
    if file_path.exists():
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file_path}: {exc}") from None
    elif explicit:
        raise ConfigError(f"config file not found: {file_path}")

    problems = check_document(data, (*CORE, *CHANNEL_COMMON))
    if problems:
        raise ConfigError("\n".join(f"{file_path}: {p}" for p in problems))
    values: dict[str, Any] = {}
    for name, key in _FIELD_KEYS.items():
        table = key.table
        source = data if not table else data.get(table, {})
        if isinstance(source, Mapping) and key.name in source:
            values[name] = _coerce(name, source[key.name], f"{file_path}: {key.path}")
        if key.env and key.env in env:
            values[name] = _coerce(name, _from_env(key, env[key.env]), key.env)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value if name == "run_workers" else \
                _coerce(name, value, f"--{name.replace('_', '-')}")
    base = Config(sections=data)
    try:
        return replace(base, **values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
