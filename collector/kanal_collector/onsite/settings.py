"""The `[onsite]` table of kanal.toml, and the web push channel the pages subscribe to.

    [onsite]
    dir = "onsite"                  # campaign files (KANAL_ONSITE_DIR)
    site_max_age = 60               # seconds browsers keep the site document
    queue_ttl = "7d"                # how long a journey-queued message waits to be shown
    form_min_seconds = 3            # a form sent sooner after it was shown is a bot's
    form_max_age = "1d"             # … and one older than this is refused too
    form_rate_limit = 10            # form submissions a minute per client address
    address_limit = 3               # confirmations to one address a day
    confirm_ttl = "7d"              # how long a confirmation link works
    confirm_page = "https://shop.example/newsletter/confirm"  # the shop's page with the
                                    # snippet that confirms (links the browser); default:
                                    # Kanal's own page (confirms, links no browser)
    confirm_message = "confirm_signup"  # a message file (email and sms content) with
                                    # {{ data.confirm_url }}; default: a built-in text
    email_channel = "email"         # where email confirmations go out
    sms_channel = "sms"             # … and SMS ones
    webpush_channel = "webpush"     # whose VAPID key the pages subscribe with
    service_worker = "/kanal-sw.js" # where the shop serves Kanal's service worker
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..channels.webpush import PUSH_HOSTS, load_vapid, public_key_b64
from ..config import Config, resolve_secret
from ..errors import ConfigError
from ..profiles.segments import SegmentError, duration_ms

DAY_MS = 86_400_000


@dataclass(frozen=True)
class WebPush:
    """What the pages need of the web push channel."""

    channel: str
    public_key: str
    push_hosts: tuple[str, ...]


@dataclass(frozen=True)
class OnsiteSettings:
    """On-site settings, read once from the config."""

    site_max_age: int = 60
    queue_ttl_ms: int = 7 * DAY_MS
    form_min_ms: int = 3000
    form_max_age_ms: int = DAY_MS
    form_rate_limit: float = 10.0
    address_limit: int = 3
    confirm_ttl_ms: int = 7 * DAY_MS
    confirm_page: str | None = None
    confirm_message: str | None = None
    email_channel: str = "email"
    sms_channel: str = "sms"
    service_worker: str = "/kanal-sw.js"
    webpush: WebPush | None = None
    public_url: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> OnsiteSettings:
        """Read `[onsite]` and the web push channel's key; ConfigError naming the key."""
        table = config.section("onsite")
        out = cls()

        def duration(name: str, default: int) -> int:
            if name not in table:
                return default
            try:
                return duration_ms(table[name], f"onsite.{name}")
            except SegmentError as exc:
                raise ConfigError(str(exc)) from None

        def number(name: str, default: float, low: float) -> float:
            value = table.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise ConfigError(f"onsite.{name}: a number of at least {low:g}, "
                                  f"not {value!r}")
            return float(value)

        confirm_page = table.get("confirm_page")
        if confirm_page is not None and (not isinstance(confirm_page, str) or
                                         not confirm_page.startswith(("http://",
                                                                      "https://"))):
            raise ConfigError(f"onsite.confirm_page: a URL starting with http:// or "
                              f"https://, not {confirm_page!r}")
        worker = str(table.get("service_worker", out.service_worker))
        if not worker.startswith("/") or worker.startswith("//"):
            raise ConfigError(f"onsite.service_worker: a path on the shop's site like "
                              f"/kanal-sw.js, not {worker!r}")
        return cls(
            site_max_age=int(number("site_max_age", out.site_max_age, 0)),
            queue_ttl_ms=duration("queue_ttl", out.queue_ttl_ms),
            form_min_ms=int(number("form_min_seconds", out.form_min_ms / 1000, 0) * 1000),
            form_max_age_ms=duration("form_max_age", out.form_max_age_ms),
            form_rate_limit=number("form_rate_limit", out.form_rate_limit, 0),
            address_limit=int(number("address_limit", out.address_limit, 1)),
            confirm_ttl_ms=duration("confirm_ttl", out.confirm_ttl_ms),
            confirm_page=confirm_page,
            confirm_message=table.get("confirm_message"),
            email_channel=str(table.get("email_channel", out.email_channel)),
            sms_channel=str(table.get("sms_channel", out.sms_channel)),
            service_worker=worker,
            webpush=_webpush(config, table.get("webpush_channel")),
            public_url=config.public_url,
        )


def _webpush(config: Config, wanted: Any) -> WebPush | None:
    """The web push channel the pages subscribe with: `webpush_channel`, else the first
    `[channels.*]` table of type webpush (none: the pages offer no push)."""
    tables = config.section("channels")
    found: list[tuple[str, Mapping[str, Any]]] = [
        (str(name), table) for name, table in tables.items()
        if isinstance(table, Mapping) and str(table.get("type", name)) == "webpush"
        and table.get("enabled", True) is not False]
    if wanted is not None:
        found = [(n, t) for n, t in found if n == wanted]
        if not found:
            raise ConfigError(f"onsite.webpush_channel: no [channels.{wanted}] of type "
                              f"webpush")
    if not found:
        return None
    name, table = found[0]
    try:
        key = resolve_secret(table.get("vapid_private_key"))
        if not isinstance(key, str):
            raise ValueError("vapid_private_key is required")
        public = public_key_b64(load_vapid(key))
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"[channels.{name}]: {exc}") from None
    hosts = table.get("push_hosts", list(PUSH_HOSTS))
    return WebPush(name, public, tuple(str(h).lower() for h in hosts))
