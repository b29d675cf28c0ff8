"""Journey controls at send time: quiet hours, frequency caps and the daily budget.

The dispatcher asks `decide` about every claimed row, after the eligibility checks and
before rendering; this is the one place these rules are applied. A row is sent now,
deferred (back to `queued`, due later) or skipped. Only marketing messages are held:
transactional ones are exempt (unsubscribe, consent and suppression still apply to
everything, in eligibility.py).

    [quiet_hours]            # in each person's time zone
    from = "21:00"
    to = "08:00"
    timezone = "Europe/Berlin"   # for people without one
    [quiet_hours.sms]        # replaces the global window on that channel
    from = "20:00"
    to = "09:00"

    [frequency]
    per_day = 3              # marketing messages per person per local day, all channels
    per_week = 10            # … in the 7 local days ending today
    daily_budget = 2         # per person per local day; journey priority decides who
    [frequency.sms]
    per_day = 1

The `[deliverability]` rules (sending.py: warm-up ramps per From domain, throttles per
recipient domain, the sunset policy) are checked here too, first, so their deferrals
and skips are recorded like these.

A day is the person's local calendar day: their `timezone` when it is a valid IANA
name, else `[quiet_hours] timezone`, else `[journeys] default_timezone`, else UTC.
Counted are the person's marketing rows already sent (or in doubt), by when.

The budget: a row is over it when the marketing rows sent to the person today plus
their queued marketing rows of a HIGHER priority due before the end of their day reach
`daily_budget` (the dispatcher handles due rows highest priority first). Each journey
(or send step) says what a held row does: `quiet_hours: defer | drop` and
`over_limit: wait | skip`. A wait lasts until the person's next local day starts (or,
when that falls in quiet hours, until they end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..localtime import UTC_NAME, Window, day_start, default_timezone, is_zone, zone
from ..localtime import zone_name as _zone_name
from ..store import outbox as store
from ..store.connection import Connection
from .eligibility import Person
from .sending import SendingRules

QUIET_HOURS = "quiet hours"
FREQUENCY_CAP = "frequency cap"
DAILY_BUDGET = "daily budget"
"""Reason prefixes (the text before ':'); `kanal journeys why` matches on them."""
DEFERRED = "deferred"
SKIPPED = "skipped"
"""What `outbox_log` records for a held row."""

QUIET_HOURS_MODES = ("defer", "drop")
OVER_LIMIT_MODES = ("wait", "skip")
CONTROL_KEYS: dict[str, tuple[str, ...]] = {
    "quiet_hours": QUIET_HOURS_MODES,
    "over_limit": OVER_LIMIT_MODES,
}
"""The keys of a row's `controls` and their values (the first is the default)."""

SEND = "send"
DEFER = "defer"
SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    """What to do with a row now: send it, defer it until a time, or skip it."""

    action: str
    reason: str | None = None
    until_ms: int | None = None
    timezone: str | None = None
    """The person's time zone the decision was made in."""

    @classmethod
    def send(cls) -> Decision:
        """Send it now."""
        return cls(SEND)

    @classmethod
    def defer(cls, until_ms: int, reason: str, timezone: str | None = None) -> Decision:
        """Keep it queued until `until_ms`, for `reason`."""
        return cls(DEFER, reason, until_ms, timezone)

    @classmethod
    def skip(cls, reason: str, timezone: str | None = None) -> Decision:
        """Never send it, for `reason`."""
        return cls(SKIP, reason, None, timezone)

    def detail(self) -> dict[str, Any]:
        """What `outbox_log` keeps: reason, until (ms, for a deferral), timezone."""
        out: dict[str, Any] = {"reason": self.reason, "until": self.until_ms}
        if self.timezone is not None:
            out["timezone"] = self.timezone
        return out


@dataclass(frozen=True)
class QuietHours:
    """A quiet window in people's local time, and the zone for people without one."""

    window: Window
    timezone: str | None = None


@dataclass(frozen=True)
class Caps:
    """How many marketing messages a person may get per local day and week."""

    per_day: int | None = None
    per_week: int | None = None


@dataclass(frozen=True)
class Controls:
    """The `[quiet_hours]` and `[frequency]` settings of kanal.toml (default: no limits)."""

    timezone: str = UTC_NAME
    """The zone of people without a valid one."""
    quiet_hours: QuietHours | None = None
    channel_quiet_hours: Mapping[str, QuietHours] = field(default_factory=dict)
    caps: Caps = Caps()
    channel_caps: Mapping[str, Caps] = field(default_factory=dict)
    daily_budget: int | None = None
    sending: SendingRules = SendingRules()
    """Warm-up, recipient-domain throttles and sunset (`[deliverability]`)."""

    def __post_init__(self) -> None:
        if not is_zone(self.timezone):
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}")

    @property
    def limited(self) -> bool:
        """True when anything may hold a marketing row back."""
        return self.sending.active or self.per_person

    @property
    def per_person(self) -> bool:
        """True when quiet hours, a cap or the budget may hold a person's row back."""
        caps = [self.caps, *self.channel_caps.values()]
        return bool(self.quiet_hours or self.channel_quiet_hours
                    or self.daily_budget is not None
                    or any(c.per_day is not None or c.per_week is not None for c in caps))

    def quiet_for(self, channel: str) -> QuietHours | None:
        """The quiet hours of a channel (its own table, else the global one)."""
        return self.channel_quiet_hours.get(channel, self.quiet_hours)

    @classmethod
    def from_config(cls, config: Config) -> Controls:
        """Parse `[quiet_hours]` and `[frequency]`; ValueError naming the bad key."""
        fallback = default_timezone(config)
        quiet_section = config.section("quiet_hours")
        if "timezone" in quiet_section:
            fallback = _zone_setting(quiet_section["timezone"], "[quiet_hours] timezone")
        quiet, by_channel = None, {}
        for key, value in quiet_section.items():
            if isinstance(value, Mapping):
                by_channel[str(key)] = _quiet(value, f"[quiet_hours.{key}]", nested=True)
            elif key not in ("from", "to", "timezone"):
                raise ValueError(f"[quiet_hours] {key}: unknown key (expected from, to, "
                                 f"timezone, or a [quiet_hours.CHANNEL] table)")
        if "from" in quiet_section or "to" in quiet_section:
            quiet = _quiet(quiet_section, "[quiet_hours]", nested=False)

        frequency = config.section("frequency")
        caps_by_channel = {}
        for key, value in frequency.items():
            if isinstance(value, Mapping):
                where = f"[frequency.{key}]"
                for sub in value:
                    if sub not in ("per_day", "per_week"):
                        raise ValueError(f"{where} {sub}: unknown key (expected per_day, "
                                         f"per_week; daily_budget is for all channels)")
                caps_by_channel[str(key)] = Caps(_count(value, "per_day", where),
                                                 _count(value, "per_week", where))
            elif key not in ("per_day", "per_week", "daily_budget"):
                raise ValueError(f"[frequency] {key}: unknown key (expected per_day, "
                                 f"per_week, daily_budget, or a [frequency.CHANNEL] table)")
        return cls(
            timezone=fallback,
            quiet_hours=quiet,
            channel_quiet_hours=by_channel,
            caps=Caps(_count(frequency, "per_day", "[frequency]"),
                      _count(frequency, "per_week", "[frequency]")),
            channel_caps=caps_by_channel,
            daily_budget=_count(frequency, "daily_budget", "[frequency]"),
            sending=SendingRules.from_config(config),
        )


def _zone_setting(value: Any, where: str) -> str:
    if not is_zone(value):
        raise ValueError(f"{where}: unknown time zone {value!r} "
                         f"(an IANA name like Europe/Berlin)")
    return str(value)


def _quiet(section: Mapping[str, Any], where: str, *, nested: bool) -> QuietHours:
    if nested:
        for key in section:
            if key not in ("from", "to", "timezone"):
                raise ValueError(f"{where} {key}: unknown key (expected from, to, timezone)")
    for key in ("from", "to"):
        if key not in section:
            raise ValueError(f"{where} {key}: required (a time of day like \"21:00\")")
    try:
        window = Window.parse(section["from"], section["to"])
    except ValueError as exc:
        raise ValueError(f"{where} {exc}") from None
    timezone = None
    if nested and "timezone" in section:
        timezone = _zone_setting(section["timezone"], f"{where} timezone")
    return QuietHours(window, timezone)


def _count(section: Mapping[str, Any], key: str, where: str) -> int | None:
    if key not in section:
        return None
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} {key}: a whole number of messages (0 or more), "
                         f"not {value!r}")
    return value


def row_controls(controls: Mapping[str, Any] | None) -> dict[str, str]:
    """Validate a row's controls ({"quiet_hours": …, "over_limit": …}); ValueError if bad."""
    out: dict[str, str] = {}
    for key, value in dict(controls or {}).items():
        if key not in CONTROL_KEYS:
            raise ValueError(f"controls: unknown key {key!r} "
                             f"(expected {', '.join(CONTROL_KEYS)})")
        if value not in CONTROL_KEYS[key]:
            raise ValueError(f"controls.{key} must be {' or '.join(CONTROL_KEYS[key])}, "
                             f"not {value!r}")
        out[key] = str(value)
    return out


def person_timezone(person: Person, fallback: str) -> str:
    """The person's time zone name: their computed `timezone` when valid, else `fallback`."""
    return _zone_name(person.computed.get("timezone"), fallback)


def decide(conn: Connection, row: store.OutboxRow, person: Person,
           channel_name: str, now_ms: int, settings: Controls, *,
           channel_kind: str | None = None, recipient: str | None = None) -> Decision:
    """Send, defer or skip a claimed row now (reads only; the caller records the outcome)."""
    if row.kind != "marketing" or not settings.limited:
        return Decision.send()
    tz_name = person_timezone(person, settings.timezone)
    if settings.sending.active:
        hold = settings.sending.check(conn, person=person, journey=row.journey,
                                      channel=channel_name, channel_kind=channel_kind,
                                      recipient=recipient, now_ms=now_ms)
        if hold is not None:
            return (Decision.skip(hold.reason, tz_name) if hold.until_ms is None
                    else Decision.defer(hold.until_ms, hold.reason, tz_name))
    if not settings.per_person:
        return Decision.send()
    quiet = settings.quiet_for(channel_name)
    quiet_tz = zone(person_timezone(person, quiet.timezone or settings.timezone)
                    if quiet is not None else tz_name)
    if quiet is not None:
        ends = quiet.window.open_until(now_ms, quiet_tz)
        if ends is not None:
            if row.controls.get("quiet_hours", QUIET_HOURS_MODES[0]) == "drop":
                return Decision.skip(QUIET_HOURS, tz_name)
            return Decision.defer(ends, QUIET_HOURS, tz_name)
    tz = zone(tz_name)
    reason = _over_limit(conn, row, person, channel_name, now_ms, settings, tz)
    if reason is None:
        return Decision.send()
    if row.controls.get("over_limit", OVER_LIMIT_MODES[0]) == "skip":
        return Decision.skip(reason, tz_name)
    until = day_start(now_ms, tz, 1)
    if quiet is not None:
        # Waking at midnight only to meet quiet hours (and, with `drop`, be dropped)
        # would lose a message that was merely waiting: wake when they end instead.
        until = quiet.window.open_until(until, quiet_tz) or until
    return Decision.defer(until, reason, tz_name)


def _over_limit(conn: Connection, row: store.OutboxRow, person: Person,
                channel: str, now_ms: int, settings: Controls, tz: Any) -> str | None:
    """The cap or budget this row would break, as a reason, or None."""
    caps = settings.caps
    mine = settings.channel_caps.get(channel, Caps())
    profiles = {row.profile_id, person.profile_id}
    today = day_start(now_ms, tz)
    weekly = caps.per_week is not None or mine.per_week is not None
    since = day_start(now_ms, tz, -6) if weekly else today
    sent = store.sent_marketing(conn, profiles, since, exclude=row.id)
    sent_today = [s for s in sent if s.at >= today]
    checks = [
        (caps.per_day, sent_today, f"{FREQUENCY_CAP}: {caps.per_day} per day"),
        (caps.per_week, sent, f"{FREQUENCY_CAP}: {caps.per_week} per week"),
        (mine.per_day, [s for s in sent_today if s.channel == channel],
         f"{FREQUENCY_CAP}: {mine.per_day} per day on {channel}"),
        (mine.per_week, [s for s in sent if s.channel == channel],
         f"{FREQUENCY_CAP}: {mine.per_week} per week on {channel}"),
    ]
    for limit, counted, reason in checks:
        if limit is not None and len(counted) >= limit:
            return reason
    budget = settings.daily_budget
    if budget is None:
        return None
    ahead = store.queued_ahead(conn, profiles, above=row.priority,
                               due_before=day_start(now_ms, tz, 1), exclude=row.id)
    if len(sent_today) + len(ahead) < budget:
        return None
    reason = f"{DAILY_BUDGET}: {budget} per day"
    # Who took the slot: a higher-priority row waiting for today, or one sent today.
    winner = ahead[0] if ahead and len(sent_today) < budget else max(
        (s for s in sent_today if s.priority > row.priority),
        key=lambda s: s.priority, default=None)
    if winner is not None:
        reason += f"; outranked by journey {winner.journey}" if winner.journey else \
            f"; outranked by outbox row {winner.id}"
    return reason
