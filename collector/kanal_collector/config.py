"""Configuration: command-line flags, then KANAL_* variables, then kanal.toml, then defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_CONFIG_FILE = "kanal.toml"

# Where each setting lives in kanal.toml: (table, key). The environment variable is
# KANAL_ + the field name in upper case.
_FILE_KEYS: dict[str, tuple[str | None, str]] = {
    "db": (None, "db"),
    "journeys_dir": (None, "journeys_dir"),
    "host": ("server", "host"),
    "port": ("server", "port"),
    "threads": ("server", "threads"),
    "public_url": ("server", "public_url"),
    "trusted_proxies": ("server", "trusted_proxies"),
    "anonymize_ip": ("ingest", "anonymize_ip"),
    "rate_limit": ("ingest", "rate_limit"),
    "rate_burst": ("ingest", "rate_burst"),
    "synchronous": ("storage", "synchronous"),
    "busy_timeout": ("storage", "busy_timeout"),
    "poll_interval": ("workers", "poll_interval"),
    "lease_seconds": ("workers", "lease_seconds"),
}


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


def _coerce(name: str, value: Any) -> Any:
    """Turn a file or environment value into the field's type, or raise ConfigError."""
    kind = {f.name: f.type for f in fields(Config)}[name]
    try:
        if kind == "Path":
            return Path(str(value))
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            return tuple(str(v) for v in value)
        if kind == "str | None":
            return None if value in (None, "") else str(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


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

    values: dict[str, Any] = {}
    for name, (table, key) in _FILE_KEYS.items():
        source = data if table is None else data.get(table, {})
        if isinstance(source, Mapping) and key in source:
            values[name] = _coerce(name, source[key])
        env_name = "KANAL_" + name.upper()
        if env_name in env:
            values[name] = _coerce(name, env[env_name])
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value if name == "run_workers" else _coerce(name, value)
    base = Config(sections=data)
    try:
        return replace(base, **values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
