"""Email and phone values: one module checks and normalises them for every part
(identities, imports, sends); invalid values are kept as invalid traits and never become
identities; existing identities are normalised by a migration that reports what it
changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import connect_to, db_at, downgrade
from profiles_util import Log

from kanal_collector.cli import cli
from kanal_collector.config import Config
from kanal_collector.contacts import (
    check_email,
    check_phone,
    normalise_country,
    normalise_email,
    normalise_phone,
)
from kanal_collector.errors import ConfigError
from kanal_collector.profiles.identity import default_country
from kanal_collector.profiles.step import ProfilesStep, SegmentsStep
from kanal_collector.store.schema import MIGRATIONS, migrate
from kanal_collector.workers import Processor, StatsStep


@pytest.mark.parametrize(("raw", "expected"), [
    (" Ann@Example.COM ", "ann@example.com"),
    ("ada.lovelace+news@mail.example.org", "ada.lovelace+news@mail.example.org"),
    ("Ü@exämple.de", "ü@exämple.de"),
    ("not-an-email", None), ("a..b@example.com", None), ("x@localhost", None),
    ("me@site.test", None), ("null@example.com", None), ("a@b", None), ("", None),
    ("Ann <ann@example.com>", None), ('"quoted"@example.com', None), (42, None), (None, None),
    ("a" * 250 + "@example.com", None),
])
def test_normalise_email(raw: Any, expected: str | None) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(("raw", "country", "expected"), [
    ("+46 70-123 45 67", None, "+46701234567"),
    ("0046701234567", None, "+46701234567"),
    ("070-123 45 67", "SE", "+46701234567"),
    ("070-123 45 67", "se", "+46701234567"),
    ("(650) 253-0000", "US", "+16502530000"),
    ("+1 650 253 0000", "SE", "+16502530000"),   # international: the country doesn't matter
    ("0046701234567", "SE", "+46701234567"),      # Sweden's international prefix
    (46701234567, None, None),                    # a number without + has no country
    ("070-123 45 67", None, None),                # national, no country
    ("12345", "SE", None), ("0000000", "SE", None), ("phone", "SE", None),
    ("+46 70", None, None), ("", "SE", None),
])
def test_normalise_phone(raw: Any, country: str | None, expected: str | None) -> None:
    assert normalise_phone(raw, country) == expected


def test_reasons_are_plain() -> None:
    assert check_email("a..b@example.com").reason == \
        "not an email address: An email address cannot have two periods in a row."
    assert check_phone("070-123 45 67").reason == (
        "a national number needs the person's country (a `country` trait) or "
        "[profiles] default_country")
    assert check_phone("12345", "SE").reason == "not a valid phone number in SE"
    assert check_phone("abc", "SE").reason.startswith("not a phone number:")
    assert check_phone("+46701234567").valid


def test_country_codes_and_the_setting() -> None:
    assert normalise_country(" se ") == "SE" and normalise_country("Sweden") is None
    assert default_country(Config(sections={"profiles": {"default_country": "se"}})) == "SE"
    assert default_country(Config()) is None
    with pytest.raises(ConfigError, match='profiles.default_country: a two-letter country'):
        default_country(Config(sections={"profiles": {"default_country": "Sweden"}}))


# --- through the processor ------------------------------------------------------------


@pytest.fixture
def log(tmp_path: Path) -> Any:
    log = Log(tmp_path / "k.db")
    yield log
    log.close()


def identities(log: Log, user: str) -> set[tuple[str, str]]:
    profile = log.profile(user, "user_id")
    assert profile is not None
    return {(i["kind"], i["value"]) for i in profile["identities"]}


def test_national_numbers_use_the_country_given_with_them(log: Log) -> None:
    log.add("identify", user_id="ann", trusted=True,
            traits={"phone": "070-123 45 67", "country": "SE", "email": "Ann@Example.com"})
    log.add("identify", user_id="bo", trusted=True,
            traits={"phone": "(650) 253-0000", "address": {"country": "us"}})
    log.process()
    assert identities(log, "ann") == {("user_id", "ann"), ("phone", "+46701234567"),
                                      ("email", "ann@example.com")}
    assert ("phone", "+16502530000") in identities(log, "bo")
    # the same person found by any way of writing the number
    assert log.pid("+46 70 123 45 67") == log.pid("ann")


def test_a_profiles_known_country_reads_a_later_national_number(log: Log) -> None:
    log.add("identify", user_id="ann", trusted=True, traits={"country": "SE"})
    log.add("identify", user_id="ann", trusted=True, traits={"phone": "070-123 45 67"})
    log.add("identify", user_id="cy", trusted=True, traits={"phone": "070-123 45 68"})
    log.process()
    assert ("phone", "+46701234567") in identities(log, "ann")
    cy = log.profile("cy", "user_id")
    assert cy is not None and not any(i["kind"] == "phone" for i in cy["identities"])
    assert cy["invalid"]["phone"]["value"] == "070-123 45 68"
    assert "needs the person's country" in cy["invalid"]["phone"]["reason"]


def test_the_default_country(tmp_path: Path) -> None:
    log = Log(tmp_path / "k.db")
    log.processor = Processor(log.db, [StatsStep(), ProfilesStep(default_country="SE"),
                                       SegmentsStep(log.clock)])
    log.add("identify", user_id="cy", trusted=True, traits={"phone": "070-123 45 68"})
    log.add("identify", user_id="di", trusted=True,
            traits={"phone": "(650) 253-0000", "country": "US"})
    log.process()
    assert ("phone", "+46701234568") in identities(log, "cy")
    assert ("phone", "+16502530000") in identities(log, "di")  # the person's country wins
    log.close()


def test_invalid_values_are_kept_as_invalid_traits_never_identities(log: Log) -> None:
    log.add("identify", user_id="ann", trusted=True,
            traits={"email": "ann@@example", "phone": "12345", "country": "SE"})
    log.process()
    ann = log.profile("ann", "user_id")
    assert ann is not None
    assert {i["kind"] for i in ann["identities"]} == {"user_id"}
    assert "email" not in ann["traits"] and "phone" not in ann["traits"]
    assert ann["invalid"]["email"]["value"] == "ann@@example"
    assert ann["invalid"]["phone"] == {"value": "12345", "at": ann["invalid"]["phone"]["at"],
                                       "reason": "not a valid phone number in SE"}
    # a send looks for a trusted email: there is none
    from kanal_collector.messages.eligibility import ChannelInfo, load_person, recipient_of

    person = load_person(log.conn, ann["id"])
    assert person is not None
    assert recipient_of(person, ChannelInfo("email", "email", "email")) is None
    # a valid value later supersedes the invalid one
    log.add("identify", user_id="ann", trusted=True, traits={"email": "ann@example.com"})
    log.process()
    ann = log.profile("ann", "user_id")
    assert ann is not None and "email" not in ann["invalid"]
    assert ann["traits"]["email"] == "ann@example.com"
    assert ("email", "ann@example.com") in {(i["kind"], i["value"]) for i in ann["identities"]}


def test_a_rebuild_reads_numbers_the_same(log: Log) -> None:
    from kanal_collector.profiles.rebuild import rebuild

    log.add("identify", user_id="ann", trusted=True, traits={"country": "SE"})
    for _ in range(9):  # several processor batches between the country and the number
        log.add("track", event="E", user_id="ann", trusted=True)
    log.add("identify", user_id="ann", trusted=True, traits={"phone": "070-123 45 67"})
    log.process()
    before = identities(log, "ann")
    rebuild(log.conn, log.clock, batch_size=3)
    assert identities(log, "ann") == before


# --- kanal import ---------------------------------------------------------------------


def test_the_import_report_lists_invalid_values(tmp_path: Path) -> None:
    Log(tmp_path / "k.db").close()
    rows = tmp_path / "customers.csv"
    rows.write_text("userId,email,phone,country\n"
                    "u1,ann@example.com,070-123 45 67,SE\n"
                    "u2,bo@@example,12345,SE\n"
                    ",cy@localhost,,\n")
    config = tmp_path / "kanal.toml"
    config.write_text(f'db = "{db_at(tmp_path / "k.db")}"\n')
    report = tmp_path / "report.jsonl"
    result = CliRunner().invoke(cli, ["import", str(rows), "--config", str(config),
                                      "--report", str(report)])
    assert result.exit_code == 1, result.output
    assert "Imported 3 rows: 2 stored, 0 already there, 1 rejected." in result.output
    assert "line 4: a row needs a userId, an anonymousId, an email or a phone (email " \
           "'cy@localhost': not an email address" in result.output
    assert "2 invalid email or phone value(s), imported as invalid traits" in result.output
    assert "line 3: email 'bo@@example': not an email address" in result.output
    assert "line 3: phone '12345': not a valid phone number in SE" in result.output
    written = [json.loads(line) for line in report.read_text().splitlines()]
    assert [w.get("invalid") for w in written] == [None, "email", "phone"]


# --- the migration --------------------------------------------------------------------


def test_the_migration_normalises_existing_identities(log: Log, tmp_path: Path) -> None:
    """A database from before: identities as the old rules kept them (national phone
    numbers as written, any `x@y.z` address). Migration 11 normalises them and reports
    each change; a clash with another profile is reported, not silently merged."""
    log.add("identify", user_id="ann", trusted=True, traits={"country": "SE"})
    log.add("identify", user_id="bo", trusted=True, traits={"phone": "+46701234567"})
    log.add("identify", user_id="cy", trusted=True, traits={"country": "SE"})
    log.add("identify", user_id="di", trusted=True)
    log.process()
    pids = {u: log.pid(u, "user_id") for u in ("ann", "bo", "cy", "di")}
    conn = log.conn
    old = [("phone", "0701234567", pids["ann"]),     # clashes with bo's number
           ("phone", "0709876543", pids["cy"]),      # national: normalised in SE
           ("email", "cy@mail.local", pids["cy"]),   # a special-use domain: invalid
           ("phone", "0701112233", pids["di"]),      # no country known: invalid
           ("email", "di@example.com", pids["di"])]  # already normal: untouched
    conn.executemany("INSERT INTO identities (kind, value, profile_id) VALUES (?, ?, ?)", old)
    version = next(i for i, m in enumerate(MIGRATIONS, 1)
                   if m.__name__ == "_m013_normalised_contacts")
    downgrade(conn, version - 1)
    migrate(conn)
    rows = {(k, v): p for k, v, p in conn.execute(
        "SELECT kind, value, profile_id FROM identities WHERE kind IN ('email', 'phone')")}
    assert rows == {("phone", "+46701234567"): pids["bo"],
                    ("phone", "+46709876543"): pids["cy"],
                    ("email", "di@example.com"): pids["di"]}
    result = CliRunner().invoke(cli, ["profiles", "contact-fixes", "--db", log.db.target])
    assert result.exit_code == 0, result.output
    lines = sorted(result.output.splitlines())
    assert lines == sorted([
        f"conflict\tprofile {pids['ann']}\tphone '0701234567' → +46701234567, held by "
        f"profile {pids['bo']}",
        f"normalised\tprofile {pids['cy']}\tphone '0709876543' → +46709876543",
        f"invalid\tprofile {pids['cy']}\temail 'cy@mail.local' removed: not an email "
        "address: The part after the @-sign is a special-use or reserved name that cannot "
        "be used with email.",
        f"invalid\tprofile {pids['di']}\tphone '0701112233' removed: a national number "
        "needs the person's country (a `country` trait) or [profiles] default_country",
        "4 fix(es).",
    ])


def test_the_migration_on_a_fresh_database_changes_nothing(tmp_path: Path) -> None:
    conn = connect_to(db_at(tmp_path / "k.db", migrated=False))
    migrate(conn)
    assert conn.execute("SELECT count(*) FROM contact_fixes").fetchone()[0] == 0
    conn.close()
