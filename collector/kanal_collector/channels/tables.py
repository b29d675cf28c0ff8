"""The `[channels.NAME]` tables of kanal.toml, read without importing any channel.

What reads only which channels are configured (deliverability's settings, the SMS
callbacks, `kanal report`'s start-up) imports this instead of plugins.py, which imports
every built-in channel (SMTP, DKIM, DNS) and the plugin manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import Config
from ..errors import ConfigError

PULL_CHANNELS: dict[str, tuple[str, str | None]] = {"onsite": ("onsite", None)}
"""Channels whose messages their recipient fetches (name → (kind, recipient identity)):
`onsite`, handed out by the snippet's pull (onsite/pull.py). They need no
`[channels.NAME]` table, so they are there whatever the config names, and the dispatcher
never hands their rows to a provider."""


def configured_channels(config: Config) -> dict[str, dict[str, Any]]:
    """The `[channels.NAME]` tables, unresolved (secrets still references)."""
    section = config.section("channels")
    tables: dict[str, dict[str, Any]] = {}
    for name, table in section.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"[channels.{name}] must be a table")
        tables[str(name)] = dict(table)
    return tables
