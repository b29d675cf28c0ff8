"""May this person get this message on this channel? Checked at enqueue and at send time.

The reasons a row is skipped: `no profile` (forgotten or gone), `no recipient` (no
trusted identity of the channel's kind), `suppressed` (`kanal forget`; applies to
transactional messages too), `suppressed: <reason>` (the address is on the email
suppression list: a hard bounce, repeated soft bounces, a complaint, or added by hand;
every message, transactional too), `no consent`, `unsubscribed` and `no opt-in`
(marketing only: transactional messages ignore unsubscribes and consent, never
suppression), and
`no content` (the message has nothing for the channel's kind).

Marketing SMS needs an explicit opt-in by default (`[messages] opt_in`, default
`["sms"]`): a subscription set to true (a `Subscribed` event, the trait
`subscriptions: {sms: true}`, or a START reply to a Twilio number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..channels.tables import PULL_CHANNELS
from ..config import Config
from ..contacts import normalise_email, normalise_phone
from ..profiles.privacy import is_suppressed
from ..profiles.state import computed, traits_of, trusted_traits
from ..store import deliverability as suppression_list
from ..store import identities as identity_store
from ..store import predict as predict_store
from ..store import privacy as privacy_store
from ..store import profiles as profile_store
from ..store.connection import Connection

NO_PROFILE = "no profile"
NO_RECIPIENT = "no recipient"
SUPPRESSED = "suppressed"
NO_CONSENT = "no consent"
UNSUBSCRIBED = "unsubscribed"
NO_OPT_IN = "no opt-in"
NO_CONTENT = "no content"
DEFAULT_OPT_IN = ("sms",)
"""Channels (names or kinds) where marketing needs an explicit subscription by default."""

# Built-in channels, for callers that have no channel objects at hand (journeys in the
# processor): name → (kind, recipient identity).
BUILTIN_CHANNELS: dict[str, tuple[str, str | None]] = {
    "email": ("email", "email"),
    "sms": ("sms", "phone"),
    "push": ("push", "push_token"),
    "webhook": ("webhook", None),
    "console": ("console", None),
    "webpush": ("push", "webpush"),
    **PULL_CHANNELS,
}


@dataclass(frozen=True)
class ChannelInfo:
    """What the checks need to know about a channel."""

    name: str
    kind: str
    recipient_identity: str | None


def channel_info(name: str, channels: Mapping[str, Any] | None = None) -> ChannelInfo | None:
    """The channel called `name`: from `channels` (Channel objects) or the built-ins."""
    if channels is not None and name in channels:
        ch = channels[name]
        return ChannelInfo(name, str(ch.kind), ch.recipient_identity)
    if name in BUILTIN_CHANNELS and (channels is None or not channels):
        kind, identity = BUILTIN_CHANNELS[name]
        return ChannelInfo(name, kind, identity)
    if name in PULL_CHANNELS:  # no channel object: the snippet's pull delivers them
        kind, identity = PULL_CHANNELS[name]
        return ChannelInfo(name, kind, identity)
    return None


@dataclass(frozen=True)
class Policy:
    """Consent and subscription rules, from `[messages]` in kanal.toml."""

    consent_category: str = "marketing"
    require_consent: bool = False
    """True: marketing needs consent granted; False: only a refusal blocks it."""
    opt_in: tuple[str, ...] = DEFAULT_OPT_IN
    """Channels (names or kinds) where marketing needs an explicit subscription."""

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        """The policy of `[messages]`: consent_category, require_consent, opt_in."""
        section = config.section("messages")
        opt_in = section.get("opt_in", list(DEFAULT_OPT_IN))
        if not isinstance(opt_in, list) or not all(isinstance(c, str) for c in opt_in):
            raise ValueError(f"[messages] opt_in: a list of channel names or kinds, not "
                             f"{opt_in!r}")
        return cls(
            consent_category=str(section.get("consent_category", "marketing")),
            require_consent=bool(section.get("require_consent", False)),
            opt_in=tuple(opt_in),
        )

    def needs_opt_in(self, info: ChannelInfo) -> bool:
        """Whether marketing on this channel needs an explicit subscription."""
        return info.name in self.opt_in or info.kind in self.opt_in


@dataclass(frozen=True)
class Person:
    """A profile as the checks and templates see it."""

    profile_id: int
    identities: list[tuple[str, str]]
    traits: dict[str, Any]
    computed: dict[str, Any]
    untrusted_traits: frozenset[str] = frozenset()
    """Traits last written by untrusted events: they may not aim links."""

    def template_profile(self) -> dict[str, Any]:
        """`profile` in templates: the computed values and the id."""
        return {"id": self.profile_id, **self.computed}

    def user_id(self) -> str | None:
        """The person's userId, if any."""
        return next((v for k, v in self.identities if k == "user_id"), None)


def load_person(conn: Connection, profile_id: int) -> Person | None:
    """The person behind a profile id (following merges), or None when gone."""
    row = profile_store.profile_row(conn, profile_id)
    if row is None:
        moved = profile_store.merged_into(conn, profile_id)
        row = None if moved is None else profile_store.profile_row(conn, moved)
        if row is None:
            return None
    pid = int(row["id"])
    state = row["state"]
    traits = traits_of(state)
    return Person(pid, identity_store.profile_identities(conn, pid), traits,
                  computed(state, predict_store.computed_scores(conn, [pid]).get(pid)),
                  frozenset(traits) - trusted_traits(state))


def recipient_of(person: Person, info: ChannelInfo) -> str | None:
    """Where this channel sends to for this person, or None.

    Channels without a recipient identity (webhook, console) send to the person's
    userId (or `profile:ID`). Otherwise: the current trait value when it is a trusted
    identity of the profile, else the first such identity.
    """
    if info.recipient_identity is None:
        return person.user_id() or f"profile:{person.profile_id}"
    values = [v for k, v in person.identities if k == info.recipient_identity]
    if not values:
        return None
    current: str | None = None
    if info.recipient_identity == "email":
        current = normalise_email(person.traits.get("email"))
    elif info.recipient_identity == "phone":
        current = normalise_phone(person.traits.get("phone"), person.computed.get("country"))
    return current if current in values else values[0]


def check(conn: Connection, person: Person, info: ChannelInfo, *, kind: str,
          topic: str | None, policy: Policy) -> tuple[str | None, str | None]:
    """(recipient, None) when the message may go out, else (recipient, reason)."""
    recipient = recipient_of(person, info)
    if recipient is None:
        return None, NO_RECIPIENT
    if _suppressed(conn, person, info, recipient):
        return recipient, SUPPRESSED
    listed = listed_reason(conn, info, recipient)
    if listed is not None:
        return recipient, listed
    if kind == "transactional":
        return recipient, None
    granted = person.computed.get("consent", {}).get(policy.consent_category)
    if granted is False or (policy.require_consent and granted is not True):
        return recipient, NO_CONSENT
    subs = person.computed.get("subscriptions", {})
    opted_in = False
    for key in dict.fromkeys((info.name, info.kind)):
        slot = subs.get(key) or {}
        subscribed = slot.get("subscribed")
        if subscribed is False:
            return recipient, UNSUBSCRIBED
        opted_in = opted_in or subscribed is True
        if topic is not None and slot.get("topics", {}).get(topic) is False:
            return recipient, UNSUBSCRIBED
    if policy.needs_opt_in(info) and not opted_in:
        return recipient, NO_OPT_IN
    return recipient, None


def _suppressed(conn: Connection, person: Person, info: ChannelInfo,
                recipient: str) -> bool:
    if not privacy_store.any_suppressions(conn):
        return False
    candidates = set(person.identities)
    if info.recipient_identity is not None:
        candidates.add((info.recipient_identity, recipient))
    return any(is_suppressed(conn, k, v) for k, v in sorted(candidates))


def listed_reason(conn: Connection, info: ChannelInfo, recipient: str) -> str | None:
    """`suppressed: <reason>` when an email recipient is on the suppression list."""
    if info.kind != "email" or not suppression_list.any_suppressed(conn):
        return None
    entry = suppression_list.suppression(conn, recipient.strip().lower())
    return None if entry is None else f"{SUPPRESSED}: {entry.reason.replace('_', ' ')}"
