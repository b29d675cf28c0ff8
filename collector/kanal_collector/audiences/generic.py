"""The row of the generic destinations (webhook, csv): one flat object of SHA-256 hex
hashes, for a receiver of your own or a file to upload by hand.

    email_sha256        the normalised address (contacts.normalise_email)
    phone_sha256        the number in E.164, with its '+' (contacts.normalise_phone)
    first_name_sha256, last_name_sha256, city_sha256, state_sha256   lower-cased
                        letters only (normalise.letters)
    postal_code_sha256  lower case without spaces;  country_sha256  two letters, lower case

Only the identifiers the audience allows (its `identifiers`) are filled.
"""

from __future__ import annotations

from .destination import Row
from .normalise import letters
from .person import Person, sha256

COLUMNS = ("email_sha256", "phone_sha256", "first_name_sha256", "last_name_sha256",
           "city_sha256", "state_sha256", "postal_code_sha256", "country_sha256")


def generic_row(person: Person) -> Row | None:
    """The person's hashed identifiers, or None without an email or phone."""
    if not person.matchable:
        return None
    values = {
        "email_sha256": person.emails[0] if person.emails else None,
        "phone_sha256": person.phones[0] if person.phones else None,
        "first_name_sha256": letters(person.first_name) if person.first_name else None,
        "last_name_sha256": letters(person.last_name) if person.last_name else None,
        "city_sha256": letters(person.city) if person.city else None,
        "state_sha256": letters(person.state) if person.state else None,
        "postal_code_sha256": "".join(person.postal_code.lower().split())
        if person.postal_code else None,
        "country_sha256": person.country.lower() if person.country else None,
    }
    return {k: sha256(v) for k, v in values.items() if v}
