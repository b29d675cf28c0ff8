"""`[products]` in kanal.toml: currency, recommendation windows, signals and feeds.

    [products]
    default_currency = "EUR"        # for prices that name none; templates fall back to it
    require_image = true            # recommend only products with an image
    exclude_bought_within = "30d"   # don't recommend what the person bought lately
    min_support = 3                 # bought/viewed together: people who did both, at least
    history_window = "365d"         # orders and views the lists are built from
    popular_window = "90d"          # "popular": distinct buyers in this window
    trending_window = "7d"          # "trending": buyers, carts and views in this window
    rebuild_every = "1h"            # rebuild the lists at least this often …
    rebuild_after = "1m"            # … and this long after new orders or views
    attribution_window = "7d"       # a purchase this soon after a click counts
    price_drop_percent = 10         # Product Price Dropped: a drop of at least 10 % …
    price_drop_amount = 5.0         # … or of at least this amount (optional)
    price_drop_window = "14d"       # … for people who viewed or carted it this recently
    signal_max_age = "1d"           # a change older than this when seen makes no event
    back_in_stock_from = "any"      # "any" key, or "trusted" (secret key / userHash) only
    allow_private_feeds = false     # feeds may be fetched from loopback / private addresses

    [[products.feeds]]
    name = "shop"
    url = "https://shop.example/google-feed.xml"
    every = "1h"
    format = "auto"                 # auto | csv | jsonl | xml
    delete_missing = false          # a product missing from a successful fetch is deleted
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Config, resolve_secret
from ..profiles.segments import SegmentError, duration_ms

FORMATS = ("auto", "csv", "jsonl", "xml")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_FEED_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DAY_MS = 86_400_000


def currency_code(value: Any, where: str) -> str:
    """A three-letter ISO 4217 code (upper-cased), or ValueError naming `where`."""
    text = str(value).strip().upper() if isinstance(value, str) else ""
    if not _CURRENCY.match(text):
        raise ValueError(f"{where}: a three-letter currency code like EUR, not {value!r}")
    return text


@dataclass(frozen=True)
class Feed:
    """A feed fetched on a schedule."""

    name: str
    url: str
    every_ms: int = 3_600_000
    format: str = "auto"
    delete_missing: bool = False
    timeout: float = 60.0
    max_bytes: int = 200 * 1024 * 1024
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductSettings:
    """Everything of `[products]`, checked when `kanal serve` starts."""

    default_currency: str | None = None
    require_image: bool = True
    exclude_bought_ms: int = 30 * DAY_MS
    min_support: int = 3
    history_ms: int = 365 * DAY_MS
    popular_ms: int = 90 * DAY_MS
    trending_ms: int = 7 * DAY_MS
    rebuild_every_ms: int = 3_600_000
    rebuild_after_ms: int = 60_000
    attribution_ms: int = 7 * DAY_MS
    price_drop_percent: float | None = 10.0
    price_drop_amount: float | None = None
    price_drop_window_ms: int = 14 * DAY_MS
    signal_max_age_ms: int = DAY_MS
    back_in_stock_from: str = "any"
    allow_private_feeds: bool = False
    feeds: tuple[Feed, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> ProductSettings:
        """Read `[products]`; ValueError naming the key for a bad value."""
        return cls.from_mapping(config.section("products"))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> ProductSettings:
        """Read a `[products]` table given as a mapping."""
        known = {"default_currency", "require_image", "exclude_bought_within", "min_support",
                 "history_window", "popular_window", "trending_window", "rebuild_every",
                 "rebuild_after", "attribution_window", "price_drop_percent",
                 "price_drop_amount", "price_drop_window", "signal_max_age",
                 "back_in_stock_from", "allow_private_feeds", "feeds"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"[products]: unknown key {', '.join(unknown)}")
        d = cls()
        currency = section.get("default_currency")
        values: dict[str, Any] = {
            "default_currency": None if currency is None
            else currency_code(currency, "[products] default_currency"),
            "require_image": _bool(section, "require_image", d.require_image),
            "exclude_bought_ms": _duration(section, "exclude_bought_within",
                                           d.exclude_bought_ms),
            "min_support": _whole(section, "min_support", d.min_support, low=1),
            "history_ms": _duration(section, "history_window", d.history_ms),
            "popular_ms": _duration(section, "popular_window", d.popular_ms),
            "trending_ms": _duration(section, "trending_window", d.trending_ms),
            "rebuild_every_ms": _duration(section, "rebuild_every", d.rebuild_every_ms),
            "rebuild_after_ms": _duration(section, "rebuild_after", d.rebuild_after_ms),
            "attribution_ms": _duration(section, "attribution_window", d.attribution_ms),
            "price_drop_percent": _amount(section, "price_drop_percent",
                                          d.price_drop_percent, high=100.0),
            "price_drop_amount": _amount(section, "price_drop_amount", d.price_drop_amount),
            "price_drop_window_ms": _duration(section, "price_drop_window",
                                              d.price_drop_window_ms),
            "signal_max_age_ms": _duration(section, "signal_max_age", d.signal_max_age_ms),
            "allow_private_feeds": _bool(section, "allow_private_feeds",
                                         d.allow_private_feeds),
        }
        source = section.get("back_in_stock_from", d.back_in_stock_from)
        if source not in ("any", "trusted"):
            raise ValueError(f"[products] back_in_stock_from: \"any\" or \"trusted\", "
                             f"not {source!r}")
        values["back_in_stock_from"] = source
        if values["price_drop_percent"] is None and values["price_drop_amount"] is None \
                and "price_drop_percent" in section:
            raise ValueError("[products] price_drop_percent: give a percentage (or "
                             "price_drop_amount)")
        values["feeds"] = _feeds(section.get("feeds", []))
        return cls(**values)


def _duration(section: Mapping[str, Any], key: str, default: int) -> int:
    if key not in section:
        return default
    try:
        return duration_ms(section[key], f"[products] {key}")
    except SegmentError as exc:
        raise ValueError(str(exc)) from None


def _bool(section: Mapping[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"[products] {key}: true or false, not {value!r}")
    return value


def _whole(section: Mapping[str, Any], key: str, default: int, *, low: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"[products] {key}: a whole number of at least {low}, not {value!r}")
    return value


def _amount(section: Mapping[str, Any], key: str, default: float | None, *,
            high: float | None = None) -> float | None:
    if key not in section:
        return default
    value = section[key]
    if value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not \
            0 < value < float("inf") or (high is not None and value > high):
        limit = f" and at most {high:g}" if high is not None else ""
        raise ValueError(f"[products] {key}: a number above 0{limit} (or false), "
                         f"not {value!r}")
    return float(value)


def _feeds(items: Any) -> tuple[Feed, ...]:
    if not isinstance(items, list):
        raise ValueError("[products] feeds: a list of tables ([[products.feeds]])")
    feeds: list[Feed] = []
    for i, item in enumerate(items):
        where = f"[[products.feeds]] #{i + 1}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: a table")
        unknown = sorted(set(item) - {"name", "url", "every", "format", "delete_missing",
                                      "timeout", "max_bytes", "headers"})
        if unknown:
            raise ValueError(f"{where}: unknown key {', '.join(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not _FEED_NAME.match(name):
            raise ValueError(f"{where} name: letters, digits, _ . - (at most 64), "
                             f"not {name!r}")
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"{where} ({name}) url: an http:// or https:// URL, not {url!r}")
        fmt = item.get("format", "auto")
        if fmt not in FORMATS:
            raise ValueError(f"{where} ({name}) format: one of {', '.join(FORMATS)}, "
                             f"not {fmt!r}")
        try:
            every = duration_ms(item.get("every", "1h"), f"{where} ({name}) every")
        except SegmentError as exc:
            raise ValueError(str(exc)) from None
        delete_missing = item.get("delete_missing", False)
        if not isinstance(delete_missing, bool):
            raise ValueError(f"{where} ({name}) delete_missing: true or false")
        timeout = item.get("timeout", 60)
        max_bytes = item.get("max_bytes", 200 * 1024 * 1024)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"{where} ({name}) timeout: seconds above 0, not {timeout!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"{where} ({name}) max_bytes: a whole number above 0")
        headers = item.get("headers", {})
        if isinstance(headers, Mapping):  # { env = "FEED_TOKEN" } values are secrets
            headers = {k: resolve_secret(v) for k, v in headers.items()}
        if not isinstance(headers, Mapping) or any(
                any(c in f"{k}{v}" for c in "\r\n\0") for k, v in headers.items()):
            raise ValueError(f"{where} ({name}) headers: a table of header lines")
        if any(f.name == name for f in feeds):
            raise ValueError(f"{where}: a second feed called {name!r}")
        feeds.append(Feed(name, url, every, fmt, delete_missing, float(timeout), max_bytes,
                          {str(k): str(v) for k, v in headers.items()}))
    return tuple(feeds)
