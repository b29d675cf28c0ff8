"""Touchpoints: which events count as a marketing touch, and under which keys.

A touchpoint is one event on a person's timeline, described by three keys (the report's
dimensions): its channel, its campaign and its journey. Three kinds of events qualify,
checked in this order:

1. Kanal's own message events (key_kind "kanal": sent or delivered, opened, clicked,
   an on-site message shown or clicked): channel = properties.channel (else the kind of
   the event: "Email Opened" → email, "On-site Message Clicked" → onsite), campaign =
   properties.message, journey = properties.journey.
2. Any event with UTM parameters (`context.campaign`, filled by ingest from the page
   URL): channel = utm_medium lower-cased ("campaign" without one), campaign =
   utm_campaign (else utm_source).
3. A page or screen view with an external referrer (context.page.referrer, else
   properties.referrer, else an app's context.referrer.url) and no UTM: channel
   "search" for search engines, "social" for social sites, else "referral"; no campaign.
   External: its host differs from the page's (`www.` ignored); a view with no page
   URL (an app's screen) has only external referrers.

A visit without UTM or external referrer is direct and no touchpoint, and an event with
`properties.bot = true` is never one. A dimension with no value has the key "(none)".
Channel keys are lower-case, so `sms`, `SMS` and `Sms` are one channel.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from ..messages.delivery import EVENT_NAMES, SMS_DELIVERED
from ..profiles.step import KANAL_KEY_KIND
from ..tracking.events import EMAIL_LINK_CLICKED, EMAIL_OPENED, PUSH_CLICKED

DIMENSIONS = ("channel", "campaign", "journey")
NONE_KEY = "(none)"
"""The key of a dimension a touchpoint has no value for (a UTM visit has no journey)."""

# Kanal's own events about a message that reached, or was acted on by, a person;
# each mapped to the channel kind used when the event carries no channel.
MESSAGE_EVENTS: dict[str, str] = {
    **{sent: kind for kind, (sent, _failed) in EVENT_NAMES.items()},
    SMS_DELIVERED: "sms",
    EMAIL_OPENED: "email",
    EMAIL_LINK_CLICKED: "email",
    PUSH_CLICKED: "push",
    # On the shop's own pages (onsite/events.py): a campaign's or a journey's message.
    "On-site Message Shown": "onsite",
    "On-site Message Clicked": "onsite",
}

SEARCH_ENGINES = frozenset({"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex",
                            "ecosia"})
"""Matched against any label of the referrer's host but the last (google.co.uk)."""
SOCIAL_SITES = frozenset({"facebook", "instagram", "twitter", "linkedin", "pinterest",
                          "tiktok", "reddit", "youtube"})
"""Matched like SEARCH_ENGINES (l.facebook.com, www.reddit.com)."""
SOCIAL_DOMAINS = frozenset({"t.co", "x.com", "fb.com", "fb.me", "lnkd.in", "youtu.be",
                            "pin.it", "redd.it"})
"""Short domains of social sites, matched as the host or a parent of it."""

Touch = tuple[str, str, str]
"""(channel, campaign, journey) of one touchpoint."""


def _text(value: Any) -> str | None:
    """A usable key: a non-blank string (stripped) or a number, else None."""
    if type(value) is str:  # the common case first: this runs for every touchpoint
        return value.strip() or None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


@lru_cache(maxsize=8192)
def url_host(url: str) -> str:
    """The host of a URL, lower-case and without a leading `www.` ('' when none)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""
    return host.removeprefix("www.")


def host_matches(host: str, domains: Collection[str]) -> bool:
    """True when `host` is one of `domains` or a subdomain of one."""
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


@lru_cache(maxsize=4096)
def referrer_channel(host: str) -> str:
    """search, social or referral for an external referrer's host."""
    labels = host.split(".")[:-1] or [host]
    if any(label in SEARCH_ENGINES for label in labels):
        return "search"
    if any(label in SOCIAL_SITES for label in labels) or host_matches(host, SOCIAL_DOMAINS):
        return "social"
    return "referral"


_EMPTY: Mapping[str, Any] = {}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else _EMPTY


def is_bot(body: Mapping[str, Any]) -> bool:
    """True when the event says it came from a bot (`properties.bot = true`)."""
    return _mapping(body.get("properties")).get("bot") is True


def classify(kind: str, event: str | None, key_kind: str, body: Mapping[str, Any],
             ignore_referrers: Collection[str] = ()) -> Touch | None:
    """The touchpoint an event is, or None when it is none (see the module docstring).

    `ignore_referrers` are hosts (and their subdomains) whose referrals are not
    touchpoints: payment providers, the shop's own other domains.
    """
    properties = _mapping(body.get("properties"))
    if properties.get("bot") is True:
        return None
    if key_kind == KANAL_KEY_KIND:
        fallback = MESSAGE_EVENTS.get(event or "") if kind == "track" else None
        if fallback is None:
            return None
        channel = _text(properties.get("channel")) or fallback
        return (channel.lower(), _text(properties.get("message")) or NONE_KEY,
                _text(properties.get("journey")) or NONE_KEY)
    context = _mapping(body.get("context"))
    campaign = context.get("campaign")
    if isinstance(campaign, dict) and campaign:
        medium = _text(campaign.get("medium"))
        name = _text(campaign.get("name")) or _text(campaign.get("source"))
        if medium or name or any(_text(v) for v in campaign.values()):
            return ((medium or "campaign").lower(), name or NONE_KEY, NONE_KEY)
    if kind not in ("page", "screen"):
        return None
    page = _mapping(context.get("page"))
    referrer = _text(page.get("referrer")) or _text(properties.get("referrer"))
    if referrer is None:  # an app's deep link: Segment's context.referrer {url, link}
        app_referrer = _mapping(context.get("referrer"))
        referrer = _text(app_referrer.get("url")) or _text(app_referrer.get("link"))
    if referrer is None:
        return None
    ref_host = url_host(referrer)
    if not ref_host:
        return None
    page_url = _text(page.get("url")) or _text(properties.get("url"))
    if page_url is not None and url_host(page_url) == ref_host:
        return None
    if ignore_referrers and host_matches(ref_host, ignore_referrers):
        return None
    return (referrer_channel(ref_host), NONE_KEY, NONE_KEY)
