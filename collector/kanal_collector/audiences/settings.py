"""`[audiences.NAME]` tables of kanal.toml: what every audience says, checked.

    [audiences.cart_retarget]
    destination = "meta"                 # meta, google_ads, webhook, csv, or a plugin's
    segment = "cart-abandoners"          # optional: journey steps can fill it alone
    every = "1h"                         # how often it is synced (default 1h)
    identifiers = ["email", "phone"]     # what may be sent, hashed (the default)
    audience_id = "23850000000000001"    # … and the destination's own settings
    access_token = { env = "META_TOKEN" }

The destination's own settings are checked against what its plugin declares
(plugins.py); here only what every audience has (config_keys.AUDIENCE_COMMON).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..profiles.segments import SegmentError, duration_ms
from .person import DEFAULT_IDENTIFIERS, IDENTIFIERS

COMMON = frozenset({"destination", "segment", "every", "identifiers", "enabled",
                    "description"})
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
"""An audience's name: what journey steps and commands call it."""
MIN_EVERY_MS = 60_000


@dataclass(frozen=True)
class AudienceSettings:
    """One `[audiences.NAME]` table: the common keys read, the destination's kept."""

    name: str
    destination: str
    segment: str | None = None
    every_ms: int = 3_600_000
    identifiers: tuple[str, ...] = DEFAULT_IDENTIFIERS
    enabled: bool = True
    description: str = ""
    table: Mapping[str, Any] = field(default_factory=dict)
    """The destination's own settings, secrets still `{ env = … }` references."""

    def as_json(self) -> dict[str, Any]:
        """What the API and `kanal audiences status` show (no settings: they may hold
        references to secrets, and the destination's ids are the operator's business)."""
        return {"name": self.name, "destination": self.destination, "segment": self.segment,
                "everySeconds": self.every_ms // 1000, "identifiers": list(self.identifiers),
                "enabled": self.enabled, "description": self.description}


def _one(name: str, table: Any, problems: list[str]) -> AudienceSettings | None:
    where = f"[audiences.{name}]"
    if not NAME.match(name):
        problems.append(f"{where}: an audience name is letters, digits, '_', '-', '.' "
                        "(at most 100)")
        return None
    if not isinstance(table, Mapping):
        problems.append(f"{where} must be a table")
        return None
    destination = table.get("destination")
    if not isinstance(destination, str) or not destination:
        problems.append(f"audiences.{name}.destination: required: meta, google_ads, "
                        "webhook, csv or a plugin's destination type")
        return None
    segment = table.get("segment")
    if segment is not None and (not isinstance(segment, str) or not segment):
        problems.append(f"audiences.{name}.segment: a segment name, not {segment!r}")
        segment = None
    every_ms = 3_600_000
    if "every" in table:
        try:
            every_ms = duration_ms(table["every"], "")
        except SegmentError:
            every_ms = 0
        if every_ms < MIN_EVERY_MS:
            problems.append(f"audiences.{name}.every: a duration of at least 1m like 15m, "
                            f"1h or 1d, not {table['every']!r}")
    identifiers = table.get("identifiers", list(DEFAULT_IDENTIFIERS))
    if not isinstance(identifiers, list) or not identifiers or any(
            i not in IDENTIFIERS for i in identifiers):
        problems.append(f"audiences.{name}.identifiers: a list of {', '.join(IDENTIFIERS)} "
                        f"(email or phone among them), not {identifiers!r}")
        identifiers = list(DEFAULT_IDENTIFIERS)
    elif not {"email", "phone"} & set(identifiers):
        problems.append(f"audiences.{name}.identifiers: needs email or phone (platforms "
                        "match people on those)")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"audiences.{name}.enabled: true or false, not {enabled!r}")
    return AudienceSettings(
        name=name, destination=destination, segment=segment, every_ms=every_ms,
        identifiers=tuple(dict.fromkeys(identifiers)), enabled=enabled is not False,
        description=str(table.get("description") or ""),
        table={k: v for k, v in table.items() if k not in COMMON})


def audience_settings(config: Config) -> dict[str, AudienceSettings]:
    """Every `[audiences.NAME]` table by name; ConfigError listing every problem."""
    problems: list[str] = []
    out: dict[str, AudienceSettings] = {}
    for name, table in config.section("audiences").items():
        found = _one(str(name), table, problems)
        if found is not None:
            out[found.name] = found
    if problems:
        raise ConfigError("\n".join(problems))
    return out


def audience_names(config: Config) -> frozenset[str]:
    """The names of the `[audiences.NAME]` tables (what journey steps may name), whether
    or not each table is valid (`audience_settings` says what is wrong with one)."""
    return frozenset(str(name) for name in config.section("audiences"))
