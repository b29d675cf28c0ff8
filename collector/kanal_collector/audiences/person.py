"""What an ad platform may match a person on, read from their profile.

Only a person's trusted data counts: email and phone identities (trusted events only
ever make those) and trusted traits. Identities hold what the one normaliser of all
Kanal made of them when they were attached (`contacts.normalise_email`: lower-cased;
`contacts.normalise_phone`: E.164); an invalid value never becomes one. Each destination
adds its platform's own steps on top (Meta: phone digits without '+'; Google: E.164
with '+') before hashing. Nothing here leaves Kanal: destinations send SHA-256 hashes.

`identifiers` of an audience (kanal.toml) choose what may be used: email, phone, name,
address (city, state, postal code, country), birthday, gender. Ads need the person's
explicit consent: consent category `advertising` granted (`has_consent`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..contacts import normalise_country, normalise_email, normalise_phone
from ..profiles.state import traits_of

CONSENT_CATEGORY = "advertising"
"""The consent category ads need granted (whatever [messages] require_consent says)."""
IDENTIFIERS = ("email", "phone", "name", "address", "birthday", "gender")
DEFAULT_IDENTIFIERS = ("email", "phone")
_GENDERS = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}


def sha256(text: str) -> str:
    """Lower-case hex SHA-256 of UTF-8 text (what every platform asks for)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def has_consent(state: Mapping[str, Any]) -> bool:
    """True only when the person explicitly granted consent category `advertising`."""
    # The state's `consent` section is {category: [granted, ts, event_id]} (state.py);
    # read the one entry rather than computing every value of the profile.
    entry = (state.get("consent") or {}).get(CONSENT_CATEGORY)
    return isinstance(entry, list) and bool(entry) and entry[0] is True


@dataclass(frozen=True)
class Person:
    """One person's matchable data, normalised the way every platform starts from."""

    profile_id: int
    emails: tuple[str, ...] = ()
    """Normalised addresses, the `email` trait's first."""
    phones: tuple[str, ...] = ()
    """E.164 numbers, the `phone` trait's first."""
    first_name: str | None = None
    last_name: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    """ISO 3166 alpha-2, upper case, from the traits (never guessed from a locale)."""
    birthday: dt.date | None = None
    gender: str | None = None
    """m or f."""

    def limited(self, identifiers: Sequence[str]) -> Person:
        """The same person with only the chosen kinds of identifiers."""
        use = set(identifiers)
        return Person(
            self.profile_id,
            self.emails if "email" in use else (),
            self.phones if "phone" in use else (),
            self.first_name if "name" in use else None,
            self.last_name if "name" in use else None,
            *((self.city, self.state, self.postal_code, self.country) if "address" in use
              else (None, None, None, None)),
            self.birthday if "birthday" in use else None,
            self.gender if "gender" in use else None)

    @property
    def matchable(self) -> bool:
        """True when there is an email or a phone to match on."""
        return bool(self.emails or self.phones)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _ordered(first: str | None, others: Sequence[str]) -> tuple[str, ...]:
    rest = sorted(set(others) - {first})
    return ((first,) if first is not None and first in others else ()) + tuple(rest)


def _birthday(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _first(values: list[str], trait: Any, normalise: Any) -> tuple[str, ...]:
    """The identities of one kind, the one the trait names first. They are stored as
    `contacts` normalised them when they were attached, so they are not normalised again
    (the normaliser runs only to find which one the trait names, when there are two)."""
    if len(values) < 2:
        return tuple(values)
    return _ordered(normalise(trait) if isinstance(trait, str) else None, values)


def person_of(profile_id: int, state: Mapping[str, Any],
              identities: Sequence[tuple[str, str]]) -> Person:
    """The Person of a profile's stored state and its identities."""
    traits = traits_of(dict(state))
    found = traits.get("address")
    address: dict[str, Any] = found if isinstance(found, dict) else {}
    country = normalise_country(address.get("country")) or normalise_country(
        traits.get("country"))
    emails = [v for k, v in identities if k == "email"]
    phones = [v for k, v in identities if k == "phone"]
    gender = _text(traits.get("gender"))
    return Person(
        profile_id,
        emails=_first(emails, traits.get("email"), normalise_email),
        phones=_first(phones, traits.get("phone"),
                      lambda v: normalise_phone(v, country)),
        first_name=_text(traits.get("firstName")) or _text(traits.get("first_name")),
        last_name=_text(traits.get("lastName")) or _text(traits.get("last_name")),
        city=_text(address.get("city")) or _text(traits.get("city")),
        state=_text(address.get("state")) or _text(traits.get("state")),
        postal_code=(_text(address.get("postalCode")) or _text(address.get("postal_code"))
                     or _text(traits.get("postalCode")) or _text(traits.get("zip"))),
        country=country,
        birthday=_birthday(traits.get("birthday")),
        gender=_GENDERS.get(gender.lower()) if gender else None,
    )
