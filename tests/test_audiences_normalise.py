"""Identifiers as each platform asks for them: the shared contacts normaliser first, the
platform's own steps on top, then SHA-256 — checked against the platforms' documented
normalisation examples, hashed independently here with hashlib."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest

from kanal_collector.audiences.generic import generic_row
from kanal_collector.audiences.google import GoogleAdsDestination
from kanal_collector.audiences.meta import MetaDestination
from kanal_collector.audiences.normalise import letters, phone_digits, postal_code, state_code
from kanal_collector.audiences.person import Person, has_consent, person_of


def h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


META = MetaDestination({"audience_id": "1", "access_token": "t"}, audience="a")
GOOGLE = GoogleAdsDestination({"customer_id": "123-456-7890", "user_list_id": "9",
                               "developer_token": "d", "access_token": "t"}, audience="a")


def state(**traits: Any) -> dict[str, Any]:
    """A stored profile state with trusted traits (profiles/state.py's layout)."""
    return {"t": {k: [v, 1, 1] for k, v in traits.items()}}


# Meta, "Hashing and Normalizing Data" (customer-file Custom Audiences): the examples
# of each key's formatting guideline.
@pytest.mark.parametrize(("function", "raw", "normalised"), [
    (letters, "Mary", "mary"),                       # FN: lower case, a-z
    (letters, " Jean-Luc ", "jeanluc"),              # no punctuation, no spaces
    (letters, "Zoë", "zoë"),                         # special characters kept as UTF-8
    (letters, "Menlo Park", "menlopark"),            # CT: no whitespace
    (letters, "St. Louis", "stlouis"),
    (lambda v: state_code(v, "US"), "CA", "ca"),     # ST: the 2-character ANSI code
    (lambda v: state_code(v, "US"), "California", "ca"),
    (lambda v: state_code(v, "US"), "new york", "ny"),
    (lambda v: state_code(v, "CA"), "Québec", "québec"),  # outside the US: letters only
    (lambda v: postal_code(v, "US"), "94025-1234", "94025"),  # ZIP: first 5 digits
    (lambda v: postal_code(v, "US"), "94025", "94025"),
    (lambda v: postal_code(v, "GB"), "SW1A 1AA", "sw1a1"),   # UK: area/district/sector
    (lambda v: postal_code(v, "SE"), "114 55", "11455"),      # lower case, no spaces
    (phone_digits, "+16505551234", "16505551234"),   # PHONE: digits, country code, no +
    (phone_digits, "+46701234567", "46701234567"),
])
def test_meta_normalisation_examples(function: Any, raw: str, normalised: str) -> None:
    assert function(raw) == normalised


def test_person_uses_the_shared_normaliser_and_trusted_data_only() -> None:
    st = state(email="  Mary.Smith@Example.COM ", phone="070-123 45 67", country="se",
               firstName="Mary", lastName="Smith-Jones",
               address={"city": "Malmö", "postalCode": "211 45"},
               birthday="1987-02-28", gender="Female")
    st["c"] = {"email": ["claimed@example.com", 1, 1]}  # an untrusted claim: never used
    identities = [("email", "mary.smith@example.com"), ("email", "a.other@example.com"),
                  ("phone", "+46701234567"), ("user_id", "u1")]
    person = person_of(7, st, identities)
    assert person.emails == ("mary.smith@example.com", "a.other@example.com")
    assert person.phones == ("+46701234567",)   # E.164 by contacts.normalise_phone
    assert person.country == "SE" and person.city == "Malmö"
    assert person.birthday == dt.date(1987, 2, 28) and person.gender == "f"
    assert "claimed@example.com" not in person.emails
    only = person.limited(("email",))
    assert only.phones == () and only.first_name is None and only.emails


def test_meta_row_hashes_every_column_as_documented() -> None:
    person = Person(1, emails=("mary.smith@example.com",), phones=("+16505551234",),
                    first_name="Mary", last_name="Smith", city="Menlo Park",
                    state="California", postal_code="94025-1234", country="US",
                    birthday=dt.date(1987, 2, 8), gender="f")
    assert META.row(person) == {
        "EMAIL": h("mary.smith@example.com"), "PHONE": h("16505551234"),
        "FN": h("mary"), "LN": h("smith"), "CT": h("menlopark"), "ST": h("ca"),
        "ZIP": h("94025"), "COUNTRY": h("us"), "DOBY": h("1987"), "DOBM": h("02"),
        "DOBD": h("08"), "GEN": h("f")}
    # the payload: one schema for the batch, "" where a row has no value
    payload = META.payload([META.row(person), {"EMAIL": h("x@example.com")}])
    assert payload["schema"][:2] == ["EMAIL", "PHONE"]
    assert payload["data"][1][:2] == [h("x@example.com"), ""]
    assert META.row(Person(2, first_name="Mary")) is None  # nothing to match on


def test_google_user_identifiers() -> None:
    # UserIdentifier: trim and lower-case, then hash; phone in E.164 (+16502531234)
    person = Person(1, emails=("jane.doe@example.com",), phones=("+16502531234",),
                    first_name=" Jane ", last_name="Doe", country="US",
                    postal_code="94043")
    assert GOOGLE.row(person) == {"userIdentifiers": [
        {"hashedEmail": h("jane.doe@example.com")},
        {"hashedPhoneNumber": h("+16502531234")},
        {"addressInfo": {"hashedFirstName": h("jane"), "hashedLastName": h("doe"),
                         "countryCode": "US", "postalCode": "94043"}}]}
    many = Person(2, emails=tuple(f"p{i}@example.com" for i in range(15)),
                  phones=("+16502531234",))
    assert len(GOOGLE.row(many)["userIdentifiers"]) == 10  # within Google's 20, see google.py


def test_generic_row() -> None:
    row = generic_row(Person(1, emails=("a@example.com",), phones=("+46701234567",)))
    assert row == {"email_sha256": h("a@example.com"), "phone_sha256": h("+46701234567")}


@pytest.mark.parametrize(("consent", "granted"), [
    ({"advertising": True}, True), ({"advertising": False}, False), ({}, False),
    ({"marketing": True}, False), ({"advertising": "yes"}, False)])
def test_ads_need_an_explicit_advertising_grant(consent: dict[str, Any],
                                                 granted: bool) -> None:
    st = {"consent": {k: [v, 1, 1] for k, v in consent.items()}}
    assert has_consent(st) is granted
