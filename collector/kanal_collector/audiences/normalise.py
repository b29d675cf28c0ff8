"""Platform-specific steps on top of `kanal_collector.contacts` (emails and E.164 phones
are normalised there, once for all Kanal): names, places, postal codes, dates.

These follow the normalisation rules Meta documents for customer-file Custom Audiences
(https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences,
"Hashing and Normalizing Data"), which Google's Customer Match needs a subset of
(https://developers.google.com/google-ads/api/reference/rpc/latest/UserIdentifier:
trim and lower-case names; E.164 phones; country code and postal code unhashed).
"""

from __future__ import annotations

import re
import unicodedata

# The US states and DC by name: Meta wants the two-letter (ANSI) code of a US state.
US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "district of columbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi",
    "minnesota": "mn", "mississippi": "ms", "missouri": "mo", "montana": "mt",
    "nebraska": "ne", "nevada": "nv", "new hampshire": "nh", "new jersey": "nj",
    "new mexico": "nm", "new york": "ny", "north carolina": "nc", "north dakota": "nd",
    "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
    "rhode island": "ri", "south carolina": "sc", "south dakota": "sd", "tennessee": "tn",
    "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
    "west virginia": "wv", "wisconsin": "wi", "wyoming": "wy",
}
_US_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")


def letters(value: str) -> str:
    """Lower-cased letters only: punctuation, spaces and digits go; letters outside a-z
    stay as UTF-8 (Meta: "a-z only … special characters in UTF-8 format").
    `" Mary-Ann "` → `maryann`, `Zoë` → `zoë`, `Menlo Park` → `menlopark`."""
    text = unicodedata.normalize("NFC", value.strip().lower())
    return "".join(c for c in text if unicodedata.category(c).startswith("L"))


def phone_digits(e164: str) -> str:
    """An E.164 number as Meta hashes it: digits only, no '+', no leading zeros
    (`+46701234567` → `46701234567`)."""
    return e164.lstrip("+").lstrip("0")


def state_code(value: str, country: str | None) -> str:
    """A state or province: a US state as its two-letter code (`California` → `ca`),
    others as `letters` (Meta)."""
    cleaned = " ".join(value.strip().lower().replace(".", "").split())
    if country in (None, "US"):
        if cleaned in US_STATES:
            return US_STATES[cleaned]
        if len(cleaned) == 2 and cleaned in US_STATES.values():
            return cleaned
    return letters(value)


def postal_code(value: str, country: str | None) -> str:
    """A postal code lower-cased without spaces; a US ZIP+4 as its first five digits;
    a UK postcode in the Area/District/Sector format Meta asks for (`SW1A 1AA` →
    `sw1a1`)."""
    text = "".join(value.lower().split())
    if country == "US" and (m := _US_ZIP.match(text)):
        return m.group(1)
    if country == "GB" and 5 <= len(text) <= 7 and text[-3].isdigit():
        return text[:-2]  # the sector: the outward code and the inward code's digit
    return text
