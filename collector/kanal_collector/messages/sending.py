"""Sending reputation at send time: warm-up ramps, recipient-domain throttles, sunset.

controls.decide asks `SendingRules.check` about every claimed marketing row, after
quiet hours, caps and the budget; the dispatcher calls `SendingRules.count` when a row
is handed to the provider. Deferrals use the same machinery as the other controls (the
row goes back to `queued`, due later, with the reason `deferred: …` and an outbox_log
entry), so `kanal outbox` and `kanal journeys why` show them. Nothing is ever dropped by
warm-up or a throttle; the sunset policy skips (that person stopped reading).

    [deliverability]
    sunset_days = 180                  # no marketing email after 180 days without an
    sunset_exempt = ["re_permission"]  #   open or click (these journeys still send)

    [deliverability.warmup."news.shop.example"]   # the From domain
    ramp = [50, 100, 250, 500, 1000]   # messages per UTC day on day 1, 2, …; then no cap
    start = "2026-03-01"               # day 1 (default: the first day Kanal sent from it)

    [deliverability.throttle."gmail.com"]          # a recipient domain …
    per_hour = 500                     # per_minute, per_hour, per_day
    domains = ["gmail.com", "googlemail.com"]      # … or a group of them

Every message handed to a provider counts (transactional ones too: a mailbox provider
sees the volume, not the kind), but only marketing messages are held back: a receipt
is never deferred by a ramp. Days are UTC days.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from email.utils import getaddresses
from typing import Any

from ..config import Config
from ..store import deliverability as store
from ..store import meta
from ..store.connection import Connection
from .eligibility import Person

WARMUP = "warm-up"
THROTTLE = "recipient domain throttle"
SUNSET = "sunset"
"""Reason prefixes (the text before ':'); `kanal journeys why` matches on them."""

_DAY = 86_400_000
_WINDOWS = {"per_minute": 60_000, "per_hour": 3_600_000, "per_day": _DAY}
_WINDOW_WORDS = {"per_minute": "minute", "per_hour": "hour", "per_day": "day"}
_ENGAGEMENT = ("Email Opened", "Email Link Clicked")
_PRUNE_EVERY = 3_600_000
_PRUNED = "send_counts_pruned"
_KEEP_COUNTS = 2 * _DAY


@dataclass(frozen=True)
class Ramp:
    """A From domain's warm-up: a cap per UTC day, from its first day on."""

    domain: str
    caps: tuple[int, ...]
    start_day: int | None = None
    """UTC day number of day 1; None: the first day a message was sent from the domain."""


@dataclass(frozen=True)
class Throttle:
    """How many messages a recipient domain (or a group of them) may get per window."""

    name: str
    domains: frozenset[str]
    limits: Mapping[str, int]
    """per_minute / per_hour / per_day → count."""


@dataclass(frozen=True)
class Hold:
    """A rule's answer: defer until `until_ms` (None: skip for good) for `reason`."""

    reason: str
    until_ms: int | None


def from_domain(settings: Mapping[str, Any]) -> str | None:
    """The domain of a channel table's `from` address (None without one)."""
    sender = settings.get("from")
    if not isinstance(sender, str):
        return None
    parsed = getaddresses([sender])
    if len(parsed) != 1 or "@" not in parsed[0][1]:
        return None
    return parsed[0][1].rsplit("@", 1)[1].strip().lower() or None


@dataclass(frozen=True)
class SendingRules:
    """The `[deliverability]` send-time rules (default: none)."""

    ramps: Mapping[str, Ramp] = field(default_factory=dict)
    throttles: tuple[Throttle, ...] = ()
    sunset_days: int | None = None
    sunset_exempt: frozenset[str] = frozenset()
    channel_domains: Mapping[str, str] = field(default_factory=dict)
    """Channel name → its From domain (channel tables with a `from`)."""

    @property
    def active(self) -> bool:
        """True when any rule may hold a row back."""
        return bool(self.ramps or self.throttles or self.sunset_days)

    def counts(self) -> bool:
        """True when sends must be counted (a ramp or a throttle is configured)."""
        return bool(self.ramps or self.throttles)

    @classmethod
    def from_config(cls, config: Config) -> SendingRules:
        """Parse the send-time keys of `[deliverability]`; ValueError naming the bad key."""
        section = config.section("deliverability")
        domains: dict[str, str] = {}
        channels = config.section("channels")
        for name, table in channels.items():
            if isinstance(table, Mapping) and (domain := from_domain(table)):
                domains[str(name)] = domain
        sunset = section.get("sunset_days")
        if sunset is not None and (isinstance(sunset, bool) or not isinstance(sunset, int)
                                   or sunset < 1):
            raise ValueError(f"[deliverability] sunset_days: a whole number of days (1 or "
                             f"more), not {sunset!r}")
        exempt = section.get("sunset_exempt", [])
        if not isinstance(exempt, list) or not all(isinstance(j, str) for j in exempt):
            raise ValueError("[deliverability] sunset_exempt: a list of journey names")
        return cls(ramps=_ramps(section.get("warmup", {})),
                   throttles=_throttles(section.get("throttle", {})),
                   sunset_days=sunset, sunset_exempt=frozenset(exempt),
                   channel_domains=domains)

    # -- deciding ---------------------------------------------------------------------

    def check(self, conn: Connection, *, person: Person, journey: str | None,
              channel: str, channel_kind: str | None, recipient: str | None,
              now_ms: int) -> Hold | None:
        """What holds a marketing email back now, or None (reads only)."""
        if channel_kind not in (None, "email"):
            return None
        if self.sunset_days and journey not in self.sunset_exempt:
            quiet = self._sunset(conn, person, now_ms)
            if quiet is not None:
                return quiet
        domain = self.channel_domains.get(channel)
        ramp = self.ramps.get(domain or "")
        if ramp is not None:
            cap = self.cap(conn, ramp, now_ms)
            day = now_ms - now_ms % _DAY
            if cap is not None and store.get_count(conn, _ramp_scope(ramp), day) >= cap:
                return Hold(f"{WARMUP}: {cap} per day from {ramp.domain} "
                            f"(day {self.ramp_day(conn, ramp, now_ms)} of the ramp)",
                            day + _DAY)
        throttle = self._throttle_of(recipient)
        if throttle is not None:
            for window, limit in throttle.limits.items():
                size = _WINDOWS[window]
                period = now_ms - now_ms % size
                if store.get_count(conn, _throttle_scope(throttle, window), period) >= limit:
                    return Hold(f"{THROTTLE}: {limit} per {_WINDOW_WORDS[window]} to "
                                f"{throttle.name}", period + size)
        return None

    def ramp_day(self, conn: Connection, ramp: Ramp, now_ms: int) -> int:
        """Which day of its ramp a domain is on today (1 = the first)."""
        start = ramp.start_day
        if start is None:
            stored = meta.get(conn, _start_key(ramp.domain))
            start = int(stored) if stored is not None else now_ms // _DAY
        return max(1, now_ms // _DAY - start + 1)

    def cap(self, conn: Connection, ramp: Ramp, now_ms: int) -> int | None:
        """Today's cap of a ramp; None once the ramp is over."""
        index = self.ramp_day(conn, ramp, now_ms) - 1
        return ramp.caps[index] if index < len(ramp.caps) else None

    def _throttle_of(self, recipient: str | None) -> Throttle | None:
        domain = store.domain_of(recipient)
        return next((t for t in self.throttles if domain in t.domains), None) if domain \
            else None

    def _sunset(self, conn: Connection, person: Person, now_ms: int) -> Hold | None:
        assert self.sunset_days is not None
        since = now_ms - self.sunset_days * _DAY
        if not stopped_reading(conn, person, since):
            return None
        return Hold(f"{SUNSET}: no open or click in {self.sunset_days} days", None)

    # -- counting ---------------------------------------------------------------------

    def count(self, conn: Connection, *, channel: str, channel_kind: str | None,
              recipient: str | None, now_ms: int) -> None:
        """Count one message handed to the provider (in the caller's transaction)."""
        if channel_kind not in (None, "email") or not self.counts():
            return
        domain = self.channel_domains.get(channel)
        ramp = self.ramps.get(domain or "")
        if ramp is not None:
            store.add_count(conn, _ramp_scope(ramp), now_ms - now_ms % _DAY)
            if ramp.start_day is None:
                store.set_fact(conn, _start_key(ramp.domain), str(now_ms // _DAY),
                               replace=False)
        throttle = self._throttle_of(recipient)
        if throttle is not None:
            for window in throttle.limits:
                size = _WINDOWS[window]
                store.add_count(conn, _throttle_scope(throttle, window), now_ms - now_ms % size)
        last = meta.get(conn, _PRUNED)
        if last is None or now_ms - int(last) >= _PRUNE_EVERY:
            store.prune_counts(conn, now_ms - _KEEP_COUNTS)
            store.set_fact(conn, _PRUNED, str(now_ms))


def _start_key(domain: str) -> str:
    return f"warmup_start:{domain}"


def _ramp_scope(ramp: Ramp) -> str:
    return f"warmup:{ramp.domain}"


def _throttle_scope(throttle: Throttle, window: str) -> str:
    return f"throttle:{throttle.name}:{window}"


def stopped_reading(conn: Connection, person: Person, since: int) -> bool:
    """True when the person has neither opened nor clicked an email (as a person, not a
    bot or a mail proxy), nor joined (first seen), nor subscribed to email again, at or
    after `since` (ms)."""
    times: list[int] = []
    last = person.computed.get("lastEngagedAt")
    if isinstance(last, dict) and isinstance(last.get("email"), int):
        times.append(last["email"])
    first = person.computed.get("firstSeen")
    if isinstance(first, int):
        times.append(first)
    subscribed = person.computed.get("subscribedAt")
    if isinstance(subscribed, dict) and isinstance(subscribed.get("email"), int):
        times.append(subscribed["email"])
    if times and max(times) >= since:
        return False
    # Engagement folded before its time was kept in the profile is on the timeline.
    found = latest_human_engagement(conn, person)
    return found is None or found < since


def latest_human_engagement(conn: Connection, person: Person) -> int | None:
    """The newest email open or click on the person's timeline that no bot made."""
    for ts, body in store.recent_named_events(conn, person.profile_id, _ENGAGEMENT):
        props = json.loads(body).get("properties")
        if not (isinstance(props, dict) and props.get("bot") is True):
            return ts
    return None


# -- parsing --------------------------------------------------------------------------


def _ramps(table: Any) -> dict[str, Ramp]:
    if not isinstance(table, Mapping):
        raise ValueError("[deliverability.warmup] must be a table of From domains")
    out: dict[str, Ramp] = {}
    for domain, spec in table.items():
        where = f"[deliverability.warmup.\"{domain}\"]"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a table (ramp = [50, 100, …])")
        for key in spec:
            if key not in ("ramp", "start"):
                raise ValueError(f"{where} {key}: unknown key (expected ramp, start)")
        caps = spec.get("ramp")
        if (not isinstance(caps, list) or not caps
                or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0
                           for c in caps)):
            raise ValueError(f"{where} ramp: a list of messages per day, each 1 or more "
                             f"(e.g. [50, 100, 250]), not {caps!r}")
        start = spec.get("start")
        start_day = None
        if start is not None:
            try:
                day = start if isinstance(start, date) else date.fromisoformat(str(start))
            except ValueError:
                raise ValueError(f"{where} start: a date like \"2026-03-01\", not "
                                 f"{start!r}") from None
            start_day = (day - date(1970, 1, 1)).days
        name = str(domain).strip().lower()
        out[name] = Ramp(name, tuple(caps), start_day)
    return out


def _throttles(table: Any) -> tuple[Throttle, ...]:
    if not isinstance(table, Mapping):
        raise ValueError("[deliverability.throttle] must be a table of recipient domains")
    out: list[Throttle] = []
    seen: dict[str, str] = {}
    for name, spec in table.items():
        where = f"[deliverability.throttle.\"{name}\"]"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a table (per_hour = 500)")
        limits: dict[str, int] = {}
        for key, value in spec.items():
            if key == "domains":
                continue
            if key not in _WINDOWS:
                raise ValueError(f"{where} {key}: unknown key (expected per_minute, "
                                 f"per_hour, per_day, domains)")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where} {key}: a whole number of messages (1 or more), "
                                 f"not {value!r}")
            limits[key] = value
        if not limits:
            raise ValueError(f"{where}: set per_minute, per_hour or per_day")
        domains = spec.get("domains", [name])
        if (not isinstance(domains, list) or not domains
                or not all(isinstance(d, str) and "." in d for d in domains)):
            raise ValueError(f"{where} domains: a list of domains like [\"gmail.com\"]")
        lowered = frozenset(d.strip().lower() for d in domains)
        for d in lowered:
            if d in seen:
                raise ValueError(f"{where}: {d} is already throttled by {seen[d]!r}")
            seen[d] = str(name)
        out.append(Throttle(str(name), lowered, limits))
    return tuple(out)

