"""The `[tracking]` table of kanal.toml.

    [tracking]
    base_url = "https://t.example.com"    # default: [server] public_url, else the request
    mailto = "unsubscribe@example.com"    # optional second List-Unsubscribe target
    keys = [{ env = "KANAL_TRACKING_KEY" }]  # optional; newest first; default: in the db
    bot_click_seconds = 10                # clicks sooner after sending are flagged
    channels = ["email"]                  # shown on the preference page
    topics = ["newsletter", "offers"]     # shown on the preference page, per channel
    one_click = "all"                     # or "topic": what a mail client's one-click does
    link_hosts = ["shop.example", "*.shop.example"]  # where untrusted data may aim links
                                          # (default: the host of [server] public_url)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import Config, resolve_secret
from ..errors import ConfigError

MIN_KEY_LENGTH = 16
ONE_CLICK = ("all", "topic")
"""What the RFC 8058 one-click POST unsubscribes from: all marketing email (default), or
only the email's topic (its whole channel when it had none)."""
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                   r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$|^\[[0-9a-f:.]+\]$")


@dataclass(frozen=True)
class TrackingSettings:
    """Email tracking settings, read once from the config."""

    base_url: str | None = None
    mailto: str | None = None
    keys: tuple[bytes, ...] = ()
    """Signing keys from the config, newest first; empty: keys kept in the database."""
    bot_click_seconds: float = 10.0
    channels: tuple[str, ...] = ("email",)
    topics: tuple[str, ...] = ()
    one_click: str = "all"
    link_hosts: tuple[str, ...] = ()
    """Hosts a link built from untrusted data may point at (`*.x` for subdomains)."""

    @classmethod
    def from_config(cls, config: Config) -> TrackingSettings:
        """Read `[tracking]`; raise ConfigError naming the bad key."""
        table = config.section("tracking")
        base = table.get("base_url") or config.public_url
        mailto = table.get("mailto")
        if base is not None and not isinstance(base, str):
            raise ConfigError("tracking.base_url must be a string")
        if base and not base.startswith(("http://", "https://")):
            raise ConfigError(f"tracking.base_url must start with http:// or https://, "
                              f"not {base!r}")
        if mailto is not None and (not isinstance(mailto, str) or "@" not in mailto
                                   or any(c in mailto for c in "<>\r\n ,")):
            raise ConfigError(f"tracking.mailto must be an email address, not {mailto!r}")
        keys = []
        for i, value in enumerate(_list(table, "keys")):
            secret = resolve_secret(value)
            if not isinstance(secret, str) or len(secret) < MIN_KEY_LENGTH:
                raise ConfigError(f"tracking.keys[{i}] must be a string of at least "
                                  f"{MIN_KEY_LENGTH} characters")
            keys.append(secret.encode())
        seconds = table.get("bot_click_seconds", cls.bot_click_seconds)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ConfigError("tracking.bot_click_seconds must be a number >= 0")
        channels = tuple(str(c) for c in _list(table, "channels")) or cls.channels
        topics = tuple(str(t) for t in _list(table, "topics"))
        for name in (*channels, *topics):
            if not name or "/" in name:
                raise ConfigError(f"tracking channel and topic names can't be empty or "
                                  f"contain '/': {name!r}")
        one_click = table.get("one_click", cls.one_click)
        if one_click not in ONE_CLICK:
            raise ConfigError(f"tracking.one_click must be \"all\" or \"topic\", "
                              f"not {one_click!r}")
        return cls(base_url=base.rstrip("/") if base else None, mailto=mailto,
                   keys=tuple(keys), bot_click_seconds=float(seconds), channels=channels,
                   topics=topics, one_click=str(one_click),
                   link_hosts=_link_hosts(table, config))

    def send_base_url(self, config: Config) -> str:
        """Where links in emails point when no request tells the host (at send time)."""
        return self.base_url or f"http://{config.host}:{config.port}"


def _list(table: Any, name: str) -> Sequence[Any]:
    value = table.get(name, [])
    if not isinstance(value, list):
        raise ConfigError(f"tracking.{name} must be a list")
    return value


def _link_hosts(table: Any, config: Config) -> tuple[str, ...]:
    if "link_hosts" not in table:
        host = urlsplit(config.public_url).hostname if config.public_url else None
        return (host.lower(),) if host else ()
    hosts = []
    for value in _list(table, "link_hosts"):
        host = value.strip().lower() if isinstance(value, str) else None
        if not host or not _HOST.match(host):
            raise ConfigError(f"tracking.link_hosts: a host name like shop.example or "
                              f"*.shop.example (no scheme, port or path), not {value!r}")
        hosts.append(host)
    return tuple(hosts)
