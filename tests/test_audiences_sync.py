"""A sync follows its segment: everyone first, then who entered and who left; a member
is added once, a removal is never lost; batches within limits; retries with backoff on
the fake clock; errors visible; `kanal forget`; merges; the worker's schedule."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import responses
from audiences_util import MetaRecorder, Shop, meta_toml

from kanal_collector.audiences import (
    BatchResult,
    Destination,
    PermanentError,
    Person,
    Request,
    Row,
)
from kanal_collector.audiences.plugins import (
    build_destination,
    check_audiences,
    destination_classes,
)
from kanal_collector.audiences.status import audience_status, request_sync
from kanal_collector.audiences.sync import AudienceSync, backoff
from kanal_collector.audiences.worker import AudienceWorker, due_reason
from kanal_collector.channels import hookimpl, plugins
from kanal_collector.config import load_config
from kanal_collector.config_keys import Key
from kanal_collector.errors import ConfigError
from kanal_collector.profiles import forget
from kanal_collector.profiles.views import export_json
from kanal_collector.store import audience_syncs as syncs
from kanal_collector.store import audiences as store


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    yield s
    s.close()


@pytest.fixture
def meta() -> Iterator[MetaRecorder]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield MetaRecorder(mock)


def test_first_everyone_then_who_entered_and_who_left(shop: Shop, meta: MetaRecorder) -> None:
    for user in ("ada", "bob", "cy"):
        shop.person(user)
    assert shop.sync().state == "done"
    assert len(meta.rows("POST")) == 3 and shop.states() == ["added"] * 3
    assert shop.sync().state == "done"
    assert len(meta.calls) == 1  # nothing changed: nothing sent
    shop.person("dee")
    shop.identify("bob", vip=False)
    assert shop.sync().state == "done"
    assert [(m, len(p["data"])) for m, p, _ in meta.calls[1:]] == [("DELETE", 1), ("POST", 1)]
    assert shop.states() == ["added"] * 3
    status = audience_status(shop.conn, "vip_ads", shop.audience())
    assert status["status"] == "ok" and status["members"] == 3
    assert [r["added"] for r in status["runs"]] == [1, 0, 3]


def test_a_new_email_removes_the_old_row_then_adds_the_new(shop: Shop,
                                                           meta: MetaRecorder) -> None:
    shop.person("ada")
    shop.sync()
    old = meta.rows("POST")[0]
    shop.identify("ada", email="ada@new.example")
    shop.sync()
    method, payload, _ = meta.calls[1]
    assert method == "DELETE" and payload["data"] == [old]
    assert meta.calls[2][0] == "POST" and meta.calls[2][1]["data"] != [old]
    assert shop.states() == ["added"]


def test_consent_decides(shop: Shop, meta: MetaRecorder) -> None:
    shop.person("ada")
    shop.person("bob", consent=None)     # never asked: not sent
    shop.person("cy", consent=False)
    shop.sync()
    assert len(meta.rows("POST")) == 1
    status = audience_status(shop.conn, "vip_ads", shop.audience())
    assert status["skipped"] == {"no consent": 2}
    shop.identify("ada", consent={"advertising": False})   # withdrawn: removed
    shop.identify("bob", consent={"advertising": True})    # granted: added
    shop.sync()
    assert [m for m, _, _ in meta.calls[1:]] == ["DELETE", "POST"]
    status = audience_status(shop.conn, "vip_ads", shop.audience())
    assert status["skipped"] == {"no consent": 2} and status["members"] == 1


def test_batches_within_the_limit(shop: Shop, meta: MetaRecorder) -> None:
    shop.configure(meta_toml(batch_size=2))
    for i in range(5):
        shop.person(f"p{i}")
    outcome = shop.sync(max_batches=2)
    assert (outcome.state, outcome.batches) == ("more", 2)
    assert shop.sync().state == "done"  # the round goes on where it stopped
    assert [len(p["data"]) for _, p, _ in meta.calls] == [2, 2, 1]
    assert len({r[0] for r in meta.rows()}) == 5  # each added once


def test_rate_limits_wait_and_nothing_is_lost(shop: Shop, meta: MetaRecorder) -> None:
    shop.configure(meta_toml(batch_size=2))
    for i in range(3):
        shop.person(f"p{i}")
    shop.sync()
    for i in range(3):
        shop.identify(f"p{i}", vip=False)
    meta.answer(400, {"error": {"message": "too many calls", "code": 80003}},
                {"Retry-After": "120"})
    outcome = shop.sync()
    assert outcome.state == "waiting"
    assert outcome.retry_at == shop.now() + 120_000  # as told, over the 30 s backoff
    status = audience_status(shop.conn, "vip_ads", shop.audience())
    assert status["status"] == "failing" and "error 80003" in status["lastError"]
    assert status["removing"] == 3
    state = syncs.sync_state(shop.conn, "vip_ads")
    assert due_reason(state, shop.now()) is None
    shop.clock.advance(120)
    assert due_reason(syncs.sync_state(shop.conn, "vip_ads"), shop.now()) == "retry"
    meta.answer(503, {"error": {"message": "unavailable", "code": 2}})
    second = shop.sync()
    assert second.retry_at == shop.now() + int(backoff(2) * 1000) == shop.now() + 60_000
    shop.clock.advance(60)
    assert shop.sync().state == "done"
    deletes = [p["data"] for m, p, _ in meta.calls if m == "DELETE"]
    # the refused batch went again as it was, and every removal arrived once it could
    assert deletes[0] == deletes[1] == deletes[2] and len(deletes) == 4
    assert shop.states() == []
    assert audience_status(shop.conn, "vip_ads", shop.audience())["status"] == "ok"


def test_a_permanent_error_is_shown_and_waits(shop: Shop, meta: MetaRecorder) -> None:
    shop.person("ada")
    meta.answer(400, {"error": {"message": "Invalid OAuth access token.", "code": 190,
                                "type": "OAuthException"}})
    outcome = shop.sync()
    assert outcome.state == "failed" and "Invalid OAuth access token" in str(outcome.error)
    status = audience_status(shop.conn, "vip_ads", shop.audience())
    assert status["adding"] == 1 and status["runs"][0]["error"]
    # fixed, then asked for: a request overrides the wait
    request_sync(shop.conn, "vip_ads", shop.now())
    assert due_reason(syncs.sync_state(shop.conn, "vip_ads"), shop.now()) == "retry"
    assert shop.sync().state == "done" and shop.states() == ["added"]


def test_an_unknown_segment_changes_nothing(shop: Shop, meta: MetaRecorder) -> None:
    shop.person("ada")
    shop.sync()
    shop.configure(meta_toml().replace('"vips"', '"vipz"'))
    outcome = shop.sync()
    assert outcome.state == "failed"
    assert "segment 'vipz' does not exist (segments: vips" in str(outcome.error)
    assert shop.states() == ["added"] and len(meta.calls) == 1


def test_a_crash_between_send_and_acknowledge_resends_that_batch_only(
        shop: Shop, meta: MetaRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    shop.configure(meta_toml(batch_size=2))
    for i in range(5):
        shop.person(f"p{i}")
    real = AudienceSync._acknowledge
    count = [0]

    def crash_on_second(self: AudienceSync, *args: Any) -> None:
        count[0] += 1
        if count[0] == 2:
            raise KeyboardInterrupt  # the process dies after the platform answered
        real(self, *args)

    monkeypatch.setattr(AudienceSync, "_acknowledge", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        shop.sync()
    monkeypatch.setattr(AudienceSync, "_acknowledge", real)
    assert shop.sync().state == "done"
    sent = [tuple(map(tuple, p["data"])) for _, p, _ in meta.calls]
    assert len(sent) == 4 and sent[1] == sent[2]  # only the in-flight batch twice
    assert shop.states() == ["added"] * 5


def test_forget_removes_from_every_audience(shop: Shop, meta: MetaRecorder) -> None:
    pid = shop.person("ada")
    shop.person("bob")
    shop.sync()
    export = export_json(shop.conn, pid)
    assert export is not None and [r["state"] for r in export["audiences"]["rows"]] == \
        ["added"]
    forget(shop.conn, "ada", shop.now())
    rows = store.member_rows(shop.conn, "vip_ads")
    assert sorted((p is None, s) for _, p, s in rows) == [(False, "added"), (True, "removing")]
    # the removal waits while the platform fails; the hashes stay until it is taken
    meta.answer(500, {"error": {"message": "unknown", "code": 1}})
    assert shop.sync().state == "waiting"
    assert len(store.member_rows(shop.conn, "vip_ads")) == 2
    shop.clock.advance(30)
    assert shop.sync().state == "done"
    assert [(m, len(p["data"])) for m, p, _ in meta.calls[1:]] == [("DELETE", 1)] * 2
    assert [p for _, p, _ in store.member_rows(shop.conn, "vip_ads")] != [None]
    assert len(store.member_rows(shop.conn, "vip_ads")) == 1  # ada's hashes are gone


def test_a_merge_keeps_the_person_added_once(shop: Shop, meta: MetaRecorder) -> None:
    shop.person("ada")
    shop.sync()
    # an anonymous visitor's profile (a new device) merges in when she logs in there
    shop.log.add("page", anon="device-2", ts=shop.now(), received=shop.now())
    shop.log.process()
    shop.clock.advance(1)
    shop.log.add("identify", user_id="ada", anon="device-2", trusted=True,
                 ts=shop.now(), received=shop.now())
    shop.log.process()
    assert shop.conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 1
    shop.sync()
    assert shop.states() == ["added"]
    assert [m for m, _, _ in meta.calls] == ["POST"]  # the same row: nothing to send
    # her email changes with the merge's identify: the old row goes, the new one comes
    shop.identify("ada", email="ada@work.example")
    shop.sync()
    assert [m for m, _, _ in meta.calls] == ["POST", "DELETE", "POST"]


class Refusing(Destination):
    """A third-party destination that refuses one row of each batch."""

    name: ClassVar[str] = "refusing"
    sent: ClassVar[list[tuple[str, list[Row]]]] = []

    def row(self, person: Person) -> Row | None:
        return {"e": person.emails[0]} if person.emails else None

    def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
        return [Request("POST", "x", list(rows))]

    def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
        Refusing.sent.append((action, list(rows)))
        return BatchResult(rejected={0: "refused by the test"})


class RefusingPlugin:
    @hookimpl
    def register_destinations(self) -> list[type[Destination]]:
        return [Refusing]

    @hookimpl
    def register_settings(self) -> list[Key]:
        return [Key("destinations.refusing.color", "string", None, "A color.")]


def test_a_plugin_destination_and_refused_rows(shop: Shop,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pm = plugins.new_plugin_manager(entry_points=False)
    pm.register(RefusingPlugin(), name="refusing")
    monkeypatch.setattr(plugins, "_manager", pm)
    assert destination_classes()["refusing"] is Refusing
    shop.configure('[audiences.r]\ndestination = "refusing"\nsegment = "vips"\n'
                   'color = "red"\n')
    shop.person("ada")
    shop.person("bob")
    shop.sync("r")
    assert shop.states("r") == ["added", "rejected"]
    shop.sync("r")
    assert len(Refusing.sent) == 1  # a refused add is not sent again
    shop.identify("ada", vip=False)
    shop.identify("bob", vip=False)
    shop.sync("r")
    # bob's refused add is just forgotten; ada's removal is refused: it stays, later
    assert [a for a, _ in Refusing.sent] == ["add", "remove"]
    status = audience_status(shop.conn, "r", shop.audience("r"))
    assert status["removing"] == 1 and status["rowErrors"][0]["error"] == \
        "refused by the test"
    with pytest.raises(ConfigError, match=r"unknown key audiences.r.colour \(destination "
                                          r"type refusing\); did you mean color\?"):
        shop.configure('[audiences.r]\ndestination = "refusing"\ncolour = "red"\n')


@pytest.mark.parametrize(("table", "message"), [
    ('destination = "meta"\naudience_id = "1"\nacces_token = "t"',
     "unknown key audiences.a.acces_token (destination type meta); did you mean "
     "access_token?"),
    ('destination = "tiktok"', "audiences.a.destination: no destination type 'tiktok' is "
                               "installed (known: csv, google_ads, meta, webhook)"),
    ('segment = "x"', "audiences.a.destination: required"),
    ('destination = "csv"\npath = "x.csv"\nevery = "5s"',
     "audiences.a.every: a duration of at least 1m"),
    ('destination = "csv"\npath = "x.csv"\nidentifiers = ["name"]',
     "audiences.a.identifiers: needs email or phone"),
    ('destination = "csv"\npath = "x.csv"\nidentifiers = ["shoe_size"]',
     "audiences.a.identifiers: a list of email, phone, name, address, birthday, gender"),
])
def test_bad_tables_are_refused(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "kanal.toml").write_text(f"[audiences.a]\n{table}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        check_audiences(load_config(tmp_path / "kanal.toml"))
    assert str(info.value).startswith(message), str(info.value)


def test_secrets_come_from_the_environment(shop: Shop,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    shop.configure(meta_toml().replace('"EAAtoken"', '{ env = "META_TOKEN" }'))
    with pytest.raises(ConfigError, match=r"\[audiences.vip_ads\].access_token: "
                                          "environment variable META_TOKEN is not set"):
        build_destination(shop.audience())
    monkeypatch.setenv("META_TOKEN", "EAAenv")
    assert build_destination(shop.audience()).access_token == "EAAenv"  # type: ignore


def test_the_worker_follows_the_schedule(shop: Shop, meta: MetaRecorder) -> None:
    shop.configure(meta_toml(every="1h"))
    worker = AudienceWorker(shop.log.db, shop.clock, check_audiences(shop.config),
                            {"vip_ads": shop.destination()})
    try:
        shop.person("ada")
        assert worker.run_once() == 1          # first round
        assert worker.run_once() == 0          # not due
        shop.person("bob")
        shop.clock.advance(3599)
        assert worker.run_once() == 0
        shop.clock.advance(1)
        assert worker.run_once() == 1          # the schedule
        assert len(meta.rows("POST")) == 2
        request_sync(shop.conn, "vip_ads", shop.now())
        assert due_reason(syncs.sync_state(shop.conn, "vip_ads"), shop.now()) == "request"
        assert worker.run_once() == 1 and worker.run_once() == 0
        # a journey hold makes it due a minute after the last round, not an hour
        syncs.mark_dirty(shop.conn, ["vip_ads"], shop.now())
        assert worker.run_once() == 0
        shop.clock.advance(60)
        assert due_reason(syncs.sync_state(shop.conn, "vip_ads"), shop.now()) == "journey"
        assert worker.run_once() == 1
        assert syncs.sync_state(shop.conn, "vip_ads")["dirty_at"] is None
    finally:
        worker.close()


def test_audiences_of_a_disabled_table_are_not_synced(shop: Shop) -> None:
    shop.configure(meta_toml(enabled=False))
    worker = AudienceWorker.from_config(shop.log.db, shop.clock, shop.config)
    assert worker.audiences == {}
    status = audience_status(shop.conn, "vip_ads", shop.audience())
    assert status["status"] == "disabled"


def test_errors_are_permanent_in_the_open_round(shop: Shop) -> None:
    class Broken(Destination):
        name: ClassVar[str] = "broken"

        def row(self, person: Person) -> Row | None:
            return {"e": "x"}

        def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
            return []

        def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
            raise PermanentError("no access to that audience")

    shop.person("ada")
    outcome = shop.sync(destination=Broken({}, audience="vip_ads"))
    assert outcome.state == "failed"
    assert json.loads(json.dumps(audience_status(shop.conn, "vip_ads", shop.audience()))
                      )["lastError"] == "no access to that audience"


def test_other_identifiers_remake_every_row(shop: Shop, meta: MetaRecorder) -> None:
    shop.person("ada", firstName="Ada")
    shop.person("bob")
    shop.sync()
    shop.configure(meta_toml(identifiers=["email", "name"]))
    shop.sync()
    # ada's row now has FN: removed and added again; bob's row is the same
    assert [(m, len(p["data"]), p["schema"]) for m, p, _ in meta.calls[1:]] == [
        ("DELETE", 1, ["EMAIL"]), ("POST", 1, ["EMAIL", "FN"])]
    assert shop.states() == ["added", "added"]


def test_another_destination_type_is_refused(shop: Shop, meta: MetaRecorder) -> None:
    shop.person("ada")
    shop.sync()
    shop.configure('[audiences.vip_ads]\ndestination = "csv"\nsegment = "vips"\n'
                   f'path = "{shop.tmp / "x.csv"}"\n')
    outcome = shop.sync()
    assert outcome.state == "failed"
    assert "was synced to a meta destination; its rows can't be sent to csv" in str(
        outcome.error)
    assert not (shop.tmp / "x.csv").exists() and shop.states() == ["added"]
