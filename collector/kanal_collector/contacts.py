"""Email addresses and phone numbers: checked and normalised one way for all of Kanal.

Identities (a person's email and phone), `kanal import`, suppressions, sends and lookups
all use these functions, so the same person's address is the same value everywhere —
and so are the values other features hash (an ads audience hashes the normalised email
and E.164 phone, as Meta and Google ask).

- `normalise_email(value)`: the address stripped and lower-cased (local part too: the
  same mailbox written `Ada@Example.com` and `ada@example.com` is one person), or None
  when its syntax isn't an email address's (RFC 5322/6531 as the email-validator library
  checks it, without DNS: `a..b@x.com`, `x@localhost`, `me@site.test` are refused).
- `normalise_phone(value, country)`: E.164 (`+46701234567`), parsed with Google's
  libphonenumber rules (the `phonenumbers` package); a national number (`070-123 45 67`)
  needs the country it was written in (ISO 3166 alpha-2: `SE`). None when it isn't a
  valid number for its country.
- `check_email` / `check_phone` say why a value was refused (an import report lists it).
- `normalise_country(value)` reads a country trait (`"se"`, `" SE "`) as `SE`.
- `is_junk(value)`: placeholder ids (`null`, `undefined`, `0`, …) that identify nobody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = ["JUNK_IDS", "Checked", "check_email", "check_phone", "is_junk",
           "normalise_country", "normalise_email", "normalise_phone"]

JUNK_IDS = frozenset({
    "", "null", "undefined", "0", "-1", "anonymous", "anon", "[object object]", "none",
    "nan", "nil", "(null)", "false", "true", "n/a", "na", "unknown", "guest", "{}", "[]",
    "\"\"", "''", "userid", "user_id", "anonymousid", "anonymous_id",
    "00000000-0000-0000-0000-000000000000",
})
"""Values that never identify anyone (placeholders, serialised nulls), lower case."""
_MAX_EMAIL = 254


@dataclass(frozen=True)
class Checked:
    """A checked contact value: the normalised value, or None and why."""

    value: str | None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        """True when the value was normalised."""
        return self.value is not None


def is_junk(value: Any) -> bool:
    """True for ids that must never identify anyone (placeholders, serialised nulls)."""
    if not isinstance(value, str):
        return True
    text = value.strip().lower()
    return (text in JUNK_IDS or len(text) > 255 or not text.strip("0-")
            or "\x00" in text)  # a NUL: no real id has one (nor can PostgreSQL keep it)


def check_email(value: Any) -> Checked:
    """The normalised address, or why `value` is not an email address."""
    if not isinstance(value, str) or not value.strip():
        return Checked(None, "not an email address (empty or not text)")
    return _check_email(value.strip())


@lru_cache(maxsize=16_384)  # the same people's addresses come again and again
def _check_email(text: str) -> Checked:
    if len(text) > _MAX_EMAIL:
        return Checked(None, f"not an email address (over {_MAX_EMAIL} characters)")
    if "@" not in text:  # the common non-address (a lookup by user id): said cheaply
        return Checked(None, "not an email address: An email address must have an @-sign.")
    try:
        found = validate_email(text, check_deliverability=False, allow_quoted_local=False,
                               allow_domain_literal=False, allow_display_name=False)
    except EmailNotValidError as exc:
        return Checked(None, f"not an email address: {exc}")
    normalised = found.normalized.lower()
    if is_junk(normalised.split("@")[0]):
        return Checked(None, "not an email address: a placeholder before the @")
    return Checked(normalised)


def normalise_email(value: Any) -> str | None:
    """The address lower-cased and stripped, or None when it is not an email address."""
    return check_email(value).value


def normalise_country(value: Any) -> str | None:
    """An ISO 3166 alpha-2 country code in upper case (`se` → `SE`), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    return text if len(text) == 2 and text.isascii() and text.isalpha() else None


def check_phone(value: Any, country: str | None = None) -> Checked:
    """The number in E.164, or why `value` is not a valid phone number. A national
    number is read as written in `country` (ISO 3166 alpha-2)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return Checked(None, "not a phone number (empty or not text)")
    return _check_phone(value.strip(), normalise_country(country))


@lru_cache(maxsize=16_384)
def _check_phone(text: str, region: str | None) -> Checked:
    if len(text) > 64:
        return Checked(None, "not a phone number (over 64 characters)")
    if sum(c.isdigit() for c in text) < 3 or "@" in text:
        return Checked(None, "not a phone number: too few digits")
    if text.startswith("00") and (region is None or not _valid(text, region)):
        text = "+" + text[2:]  # the international prefix of most countries
    if not text.startswith("+") and region is None:
        return Checked(None, "a national number needs the person's country (a `country` "
                             "trait) or [profiles] default_country")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        why = re.sub(r"^\(\d+\)\s*", "", str(exc)).rstrip(".")
        return Checked(None, f"not a phone number: {why}")
    if not phonenumbers.is_valid_number(number):
        where = f" in {region}" if region and not text.startswith("+") else ""
        return Checked(None, f"not a valid phone number{where}")
    return Checked(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _valid(text: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, region))
    except phonenumbers.NumberParseException:
        return False


def normalise_phone(value: Any, country: str | None = None) -> str | None:
    """The number in E.164 (`+46701234567`), or None when it isn't a valid one."""
    return check_phone(value, country).value
