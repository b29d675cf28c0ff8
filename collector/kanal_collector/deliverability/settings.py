"""The `[deliverability]` table of kanal.toml: bounces, complaints, VERP, webhooks.

    [deliverability]
    soft_bounce_limit = 3          # this many soft bounces of one address …
    soft_bounce_days = 7           # … within this many days put it on the suppression list
    feedback_id = "shop"           # the sender id in Feedback-ID (default: the From domain)

    [deliverability.bounces]       # asynchronous bounces (DSNs) of plain SMTP relays
    address = "bounces@bounce.shop.example"   # VERP: MAIL FROM bounces+<token>@…
    listen = "0.0.0.0:2525"        # where `kanal serve` receives them (SMTP, or LMTP)
    protocol = "smtp"              # smtp | lmtp
    channels = ["email"]           # default: every channel of type email

    [deliverability.ses]      topic_arns = ["arn:aws:sns:…"]
    [deliverability.postmark] username = "…"  password = { env = "…" }
    [deliverability.mailgun]  signing_key = { env = "MAILGUN_WEBHOOK_SIGNING_KEY" }
    [deliverability.sendgrid] public_key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…"
    [deliverability.brevo]    username/password, or token (Authorization: Bearer)
    [deliverability.resend]   secret = { env = "RESEND_WEBHOOK_SECRET" }  # whsec_…

The send-time keys (warm-up, throttles, sunset) are read by messages/sending.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..channels.tables import configured_channels
from ..config import Config, resolve_secret
from ..errors import ConfigError

PROVIDERS = ("ses", "postmark", "mailgun", "sendgrid", "brevo", "resend")
_SEND_KEYS = {"warmup", "throttle", "sunset_days", "sunset_exempt"}
_OWN_KEYS = {"soft_bounce_limit", "soft_bounce_days", "feedback_id", "bounces"}
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class Bounces:
    """Where DSNs go (a VERP address) and where Kanal receives them."""

    local: str
    """The local part before `+` (bounces)."""
    domain: str
    """The domain whose MX points at Kanal (bounce.shop.example)."""
    host: str | None = None
    port: int | None = None
    """Listen address; None: no listener (`kanal bounces serve` takes --listen)."""
    protocol: str = "smtp"
    channels: tuple[str, ...] | None = None
    """Channels whose MAIL FROM is the VERP address; None: every channel of type email."""
    max_size: int = 1_000_000


@dataclass(frozen=True)
class Settings:
    """What the deliverability parts read from the config."""

    soft_bounce_limit: int = 3
    soft_bounce_window_ms: int = 7 * _DAY_MS
    feedback_id: str | None = None
    bounces: Bounces | None = None
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Provider name → its table, secrets resolved."""

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Parse `[deliverability]`; ConfigError naming the bad key."""
        section = config.section("deliverability")
        for key in section:
            if key not in _SEND_KEYS | _OWN_KEYS | set(PROVIDERS):
                raise ConfigError(f"[deliverability] {key}: unknown key (expected "
                                  f"{', '.join(sorted(_OWN_KEYS | _SEND_KEYS))} or a "
                                  f"provider table: {', '.join(PROVIDERS)})")
        limit = _whole(section, "soft_bounce_limit", 3)
        days = _whole(section, "soft_bounce_days", 7)
        feedback = section.get("feedback_id")
        if feedback is not None and (not isinstance(feedback, str) or not _token(feedback)):
            raise ConfigError("[deliverability] feedback_id: letters, digits, '.', '_' or '-'")
        providers: dict[str, Mapping[str, Any]] = {}
        for name in PROVIDERS:
            table = section.get(name)
            if table is None:
                continue
            if not isinstance(table, Mapping):
                raise ConfigError(f"[deliverability.{name}] must be a table")
            try:
                providers[name] = {k: resolve_secret(v) for k, v in table.items()}
            except ConfigError as exc:
                raise ConfigError(f"[deliverability.{name}]: {exc}") from None
        return cls(soft_bounce_limit=limit, soft_bounce_window_ms=days * _DAY_MS,
                   feedback_id=feedback, bounces=_bounces(section.get("bounces"), config),
                   providers=providers)


def _whole(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"[deliverability] {key}: a whole number (1 or more), not {value!r}")
    return value


def _token(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "._-" for c in text) and text.isascii()


def _bounces(table: Any, config: Config) -> Bounces | None:
    if table is None:
        return None
    where = "[deliverability.bounces]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in ("address", "listen", "protocol", "channels", "max_size"):
            raise ConfigError(f"{where} {key}: unknown key (expected address, listen, "
                              f"protocol, channels, max_size)")
    address = table.get("address")
    if not isinstance(address, str) or address.count("@") != 1:
        raise ConfigError(f"{where} address: the VERP base address, like "
                          f"\"bounces@bounce.shop.example\", not {address!r}")
    local, domain = address.strip().lower().split("@")
    if not _token(local) or "+" in local or not domain or not _token(domain.replace(".", "")):
        raise ConfigError(f"{where} address: {address!r} is not a plain address (no '+')")
    host, port = None, None
    listen = table.get("listen")
    if listen is not None:
        host, port = parse_listen(listen, f"{where} listen")
    protocol = str(table.get("protocol", "smtp")).lower()
    if protocol not in ("smtp", "lmtp"):
        raise ConfigError(f"{where} protocol: smtp or lmtp, not {protocol!r}")
    channels = table.get("channels")
    if channels is not None:
        known = configured_channels(config)
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ConfigError(f"{where} channels: a list of channel names")
        unknown = [c for c in channels if c not in known]
        if unknown:
            raise ConfigError(f"{where} channels: no [channels.{unknown[0]}] table")
        channels = tuple(channels)
    size = table.get("max_size", 1_000_000)
    if isinstance(size, bool) or not isinstance(size, int) or size < 10_000:
        raise ConfigError(f"{where} max_size: bytes, at least 10000, not {size!r}")
    return Bounces(local, domain, host, port, protocol, channels, size)


def parse_listen(value: Any, where: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) → (host, port); ConfigError naming `where`."""
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}: host:port, like \"0.0.0.0:2525\", not {value!r}")
    return host, int(port_text)


def verp_channels(settings: Settings, config: Config) -> frozenset[str]:
    """The channels whose envelope sender is the VERP address."""
    if settings.bounces is None:
        return frozenset()
    if settings.bounces.channels is not None:
        return frozenset(settings.bounces.channels)
    return frozenset(name for name, table in configured_channels(config).items()
                     if str(table.get("type", name)) == "email"
                     and table.get("enabled", True) is not False)
