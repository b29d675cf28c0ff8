"""Identity resolution: which profile an event belongs to, and which profiles it merges.

The rules (DESIGN.md, sources and keys):

- Identities are (kind, value) pairs: `user_id`, `anonymous_id`, `email`, `phone`,
  `push_token`. Each points at exactly one profile.
- A *trusted* event (secret key, a valid `context.userHash`, or `kanal import`) may do
  anything: every profile holding one of its identities is merged into one, and its
  email, phone and push token become identities.
- An untrusted event (a public key without a valid userHash) may only link anonymous
  visitors to a userId: an anonymousId (or an alias' previousId) whose profile is still
  anonymous is attached to, or merged into, the userId's profile. A profile holding
  any other identity (a userId, an email, …) is another person: it is never merged and
  nothing is moved out of it. Untrusted events never add email, phone or push tokens.
- Junk ids (`null`, `undefined`, `0`, `anonymous`, `[object Object]`, …) are ignored.
- Email and phone traits are checked and normalised (contacts.py); invalid ones are
  kept as invalid traits and never become identities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import Config
from ..contacts import (
    JUNK_IDS,
    check_email,
    check_phone,
    is_junk,
    normalise_country,
)
from ..errors import ConfigError
from ..store.events import StoredEvent

__all__ = ["CONTACT_KINDS", "JUNK_IDS", "Claims", "Graph", "claims_of", "clean_id",
           "default_country", "event_country", "is_junk", "junk_examples", "resolve"]

CONTACT_KINDS = ("email", "phone", "push_token")


def clean_id(value: Any) -> str | None:
    """A usable id (stripped), or None for junk."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if is_junk(value):
        return None
    return str(value).strip()


@dataclass(frozen=True)
class Claims:
    """What one event says about who it is."""

    user_id: str | None
    anonymous_id: str | None
    previous_id: str | None
    contacts: tuple[tuple[str, str], ...]
    trusted: bool
    all_values: tuple[tuple[str, str], ...] = field(default=())
    """Every identity the event mentions, trusted or not (for suppression checks)."""
    invalid: tuple[tuple[str, str], ...] = field(default=())
    """(trait, why) of email and phone traits that aren't valid: kept as invalid traits,
    never identities."""
    needs_country: bool = False
    """A national phone number the event gave no country for (the profile's may do)."""


def _traits(event: StoredEvent) -> dict[str, Any]:
    body = event.body
    traits: dict[str, Any] = {}
    context = body.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if event.type == "identify" and isinstance(body.get("traits"), dict):
        traits.update(body["traits"])
    return traits


def default_country(config: Config) -> str | None:
    """`[profiles] default_country` (ISO 3166 alpha-2), or None; ConfigError when it is
    not a country code."""
    value = config.section("profiles").get("default_country")
    if value is None:
        return None
    country = normalise_country(value)
    if country is None:
        raise ConfigError(f"profiles.default_country: a two-letter country code like "
                          f"\"SE\", not {value!r}")
    return country


def event_country(traits: Mapping[str, Any]) -> str | None:
    """The country an event's traits give (`country`, else `address.country`), as an
    ISO 3166 alpha-2 code, or None."""
    address = traits.get("address")
    return normalise_country(traits.get("country")) or (
        normalise_country(address.get("country")) if isinstance(address, dict) else None)


def claims_of(event: StoredEvent, *, country: str | None = None,
              default_country: str | None = None) -> Claims:
    """The identities an event claims, cleaned of junk; email and phone traits checked
    (contacts.py). A national phone number is read in the event's own `country` trait,
    else `country` (the profile's), else `default_country`."""
    body = event.body
    user_id = clean_id(event.user_id)
    anonymous_id = clean_id(event.anonymous_id)
    # An alias links previousId to its userId: without a usable userId it says nothing.
    previous_id = clean_id(body.get("previousId")) if event.type == "alias" and user_id \
        else None
    traits = _traits(event)
    contacts: list[tuple[str, str]] = []
    invalid: list[tuple[str, str]] = []
    needs_country = False
    if traits.get("email") not in (None, ""):
        checked = check_email(traits["email"])
        if checked.value:
            contacts.append(("email", checked.value))
        else:
            invalid.append(("email", str(checked.reason)))
    if traits.get("phone") not in (None, ""):
        own = event_country(traits)
        checked = check_phone(traits["phone"], own or country or default_country)
        needs_country = own is None and not str(traits["phone"]).strip().startswith(
            ("+", "00"))
        if checked.value:
            contacts.append(("phone", checked.value))
        else:
            invalid.append(("phone", str(checked.reason)))
    context = body.get("context")
    device = context.get("device") if isinstance(context, dict) else None
    token = clean_id(device.get("token")) if isinstance(device, dict) else None
    if token:
        contacts.append(("push_token", token))
    mentioned = [("user_id", v) for v in (user_id,) if v]
    mentioned += [("anonymous_id", v) for v in (anonymous_id,) if v]
    if previous_id:
        mentioned += [("user_id", previous_id), ("anonymous_id", previous_id)]
    mentioned += contacts
    return Claims(user_id, anonymous_id, previous_id, tuple(contacts), event.verified,
                  tuple(mentioned), tuple(invalid), needs_country)


class Graph(Protocol):
    """The identity graph the resolver works on (SQL in the step, a dict in tests)."""

    def lookup(self, kind: str, value: str) -> int | None:
        """The profile an identity points at."""
        ...

    def is_identified(self, profile_id: int) -> bool:
        """True when the profile holds anything but anonymousIds."""
        ...

    def create(self) -> int:
        """A new, empty profile."""
        ...

    def attach(self, profile_id: int, kind: str, value: str) -> None:
        """Point a new identity at a profile."""
        ...

    def merge(self, into: int, other: int, reason: str) -> None:
        """Move everything of `other` onto `into`."""
        ...


def resolve(graph: Graph, claims: Claims) -> int | None:
    """Apply an event's claims to the graph; return its profile (None: no usable id)."""
    if claims.trusted:
        return _resolve_trusted(graph, claims)
    return _resolve_untrusted(graph, claims)


def _previous(graph: Graph, value: str) -> tuple[str, int | None]:
    found = graph.lookup("user_id", value)
    if found is not None:
        return "user_id", found
    # An unknown previousId is taken for an anonymousId, the usual case of alias.
    return "anonymous_id", graph.lookup("anonymous_id", value)


def _resolve_trusted(graph: Graph, claims: Claims) -> int | None:
    wanted: list[tuple[str, str]] = []
    if claims.user_id:
        wanted.append(("user_id", claims.user_id))
    if claims.anonymous_id:
        wanted.append(("anonymous_id", claims.anonymous_id))
    found: list[int | None] = [graph.lookup(k, v) for k, v in wanted]
    if claims.previous_id:
        # A trusted alias says the previous id, whatever it was (an anonymousId or an
        # old userId), is this person: it joins as both, so that a later event naming
        # it either way finds this person, and replaying the alias changes nothing.
        for kind in ("user_id", "anonymous_id"):
            wanted.append((kind, claims.previous_id))
            found.append(graph.lookup(kind, claims.previous_id))
    for kind, value in claims.contacts:
        wanted.append((kind, value))
        found.append(graph.lookup(kind, value))
    if not wanted:
        return None
    existing = [p for p in found if p is not None]
    if claims.user_id and found[0] is not None:
        target = found[0]
    elif existing:
        target = min(existing)
    else:
        target = graph.create()
    for other in sorted(set(existing) - {target}):
        graph.merge(target, other, "trusted")
    for (kind, value), pid in zip(wanted, found, strict=True):
        if pid is None and graph.lookup(kind, value) is None:
            graph.attach(target, kind, value)
    return target


def identified_asked(claims: Claims) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """(the userId, another identity) of these claims whose profiles `resolve` may ask
    `is_identified` of, when the other's profile is not the userId's: an untrusted
    event's anonymousId (and previousId) beside its userId."""
    if claims.trusted or not claims.user_id:
        return []
    user = ("user_id", claims.user_id)
    asked = [(user, ("anonymous_id", claims.anonymous_id))] if claims.anonymous_id else []
    if claims.previous_id:
        asked += [(user, ("user_id", claims.previous_id)),
                  (user, ("anonymous_id", claims.previous_id))]
    return asked


def _resolve_untrusted(graph: Graph, claims: Claims) -> int | None:
    anonymous: list[tuple[str, str]] = []
    if claims.anonymous_id:
        anonymous.append(("anonymous_id", claims.anonymous_id))
    if claims.user_id is None:
        if not anonymous:
            return None
        kind, value = anonymous[0]
        pid = graph.lookup(kind, value)
        if pid is None:
            pid = graph.create()
            graph.attach(pid, kind, value)
        return pid
    if claims.previous_id:
        kind, _ = _previous(graph, claims.previous_id)
        anonymous.append((kind, claims.previous_id))
    user = graph.lookup("user_id", claims.user_id)
    for kind, value in anonymous:
        pid = graph.lookup(kind, value)
        if pid is not None and (pid == user or graph.is_identified(pid)):
            continue  # already this person's, or another person's: never moved
        if pid is None:
            if kind != "anonymous_id":
                continue
            if user is None:
                user = graph.create()
                graph.attach(user, "user_id", claims.user_id)
            graph.attach(user, kind, value)
        elif user is None:
            graph.attach(pid, "user_id", claims.user_id)  # link the visitor to the userId
            user = pid
        else:
            graph.merge(user, pid, "anonymous")  # anonymous history into the known person
    if user is None:
        user = graph.create()
        graph.attach(user, "user_id", claims.user_id)
    return user


def junk_examples() -> Sequence[str]:
    """A few junk ids, for documentation and tests."""
    return sorted(JUNK_IDS - {""})[:12]
