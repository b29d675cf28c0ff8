"""Journeys send on any configured channel name, and refuse names that aren't there
(issue 13): `[channels.marketing] type = …` works in a send step; validate names an
unknown channel with FILE:LINE; a channel that disappears fails its sends visibly."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import db_at, make_app

from kanal_collector.app import close_app
from kanal_collector.cli import cli
from kanal_collector.store import outbox as outbox_store

JOURNEY = """\
name: news
trigger: {event: Signed Up}
entry: {rule: every_time}
steps:
  - send: hello
    channel: marketing
"""
MESSAGE = """\
email:
  subject: Hello
  text: Welcome aboard
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "news.yaml").write_text(JOURNEY, encoding="utf-8")
    (tmp_path / "messages").mkdir()
    (tmp_path / "messages" / "hello.yaml").write_text(MESSAGE, encoding="utf-8")
    return tmp_path


def _settings(shop: Path, channels: dict[str, Any]) -> dict[str, Any]:
    return {"journeys_dir": shop / "journeys",
            "sections": {"channels": channels,
                         "messages": {"messages_dir": str(shop / "messages")}}}


def _sign_up(env: Any, user: str) -> None:
    r = env.client.post("/v1/batch", auth=(env.keys["secret"], ""), json={"batch": [
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}},
        {"type": "track", "userId": user, "event": "Signed Up"}]})
    assert r.status_code == 200, r.get_json()
    workers = [w for w, _ in env.app.extensions["kanal.supervisor"].workers]
    workers[0].catch_up()  # the processor: profiles, journeys
    workers[2].run_once()  # the dispatcher


def test_a_send_step_may_name_any_configured_channel(shop: Path) -> None:
    out = shop / "out.jsonl"
    env = make_app(shop / "kanal.db", **_settings(
        shop, {"marketing": {"type": "console", "path": str(out)}}))
    try:
        _sign_up(env, "ann")
        conn = env.app.extensions["kanal"].db.conn()
        [row] = outbox_store.listing(conn)
        assert (row.channel, row.state) == ("marketing", "sent")
        [line] = out.read_text().splitlines()
        assert json.loads(line)["channel"] == "marketing"
    finally:
        close_app(env.app)


def test_a_channel_that_disappears_fails_its_sends_visibly(shop: Path) -> None:
    out = shop / "out.jsonl"
    env = make_app(shop / "kanal.db", **_settings(
        shop, {"marketing": {"type": "console", "path": str(out)}}))
    close_app(env.app)  # the journey is loaded (version 1, with its channel)
    keys = env.keys
    env = make_app(shop / "kanal.db", **_settings(
        shop, {"email": {"type": "console", "path": str(out)}}))
    env.keys.update(keys)
    try:
        _sign_up(env, "bo")
        conn = env.app.extensions["kanal"].db.conn()
        [row] = outbox_store.listing(conn)
        assert row.state == "failed"
        assert row.reason is not None and "no channel named marketing" in row.reason
        assert not out.exists()
        result = CliRunner().invoke(cli, ["journeys", "why", "bo", "news", "--db",
                                          db_at(shop / "kanal.db")])
        assert result.exit_code == 0, result.output
        assert "could not be queued (no channel named marketing)" in result.output
    finally:
        close_app(env.app)


def test_queued_rows_of_a_vanished_channel_fail_instead_of_waiting(shop: Path) -> None:
    from kanal_collector.messages import enqueue
    from kanal_collector.store.db import transaction

    env = make_app(shop / "kanal.db", **_settings(
        shop, {"email": {"type": "console", "path": str(shop / "out.jsonl")},
               "paused": {"type": "console", "enabled": False}}))
    try:
        conn = env.app.extensions["kanal"].db.conn()
        r = env.client.post("/v1/identify", auth=(env.keys["secret"], ""),
                            json={"userId": "cy", "traits": {"email": "cy@example.com"}})
        assert r.status_code == 200
        workers = [w for w, _ in env.app.extensions["kanal.supervisor"].workers]
        workers[0].catch_up()
        pid = conn.execute("SELECT profile_id FROM identities WHERE value = 'cy'").fetchone()[0]
        # Rows queued while the channels were there (a journey loaded then).
        before = {name: SimpleNamespace(kind="console", recipient_identity=None)
                  for name in ("gone", "paused")}
        with transaction(conn):
            gone = enqueue(conn, profile_id=pid, message="hello", channel="gone",
                           idempotency_key="k1", kind="marketing", now=env.clock.now(),
                           channels=before)
            paused = enqueue(conn, profile_id=pid, message="hello", channel="paused",
                             idempotency_key="k2", kind="marketing", now=env.clock.now(),
                             channels=before)
        workers[2].run_once()
        assert outbox_store.get(conn, gone).state == "failed"
        assert "no channel named 'gone' is configured" in str(outbox_store.get(conn, gone).reason)
        assert outbox_store.get(conn, paused).state == "queued"  # enabled = false: it waits
    finally:
        close_app(env.app)


def _toml(shop: Path, channels: str) -> None:
    (shop / "kanal.toml").write_text(f'journeys_dir = "journeys"\n[messages]\n'
                                     f'messages_dir = "messages"\n{channels}',
                                     encoding="utf-8")


def test_validate_names_an_unknown_channel_with_file_and_line(shop: Path) -> None:
    _toml(shop, '[channels.email]\nhost = "smtp.example.com"\nfrom = "a@example.com"\n')
    for command in (["journeys", "validate"], ["messages", "validate"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, result.output
        assert ("journeys/news.yaml:6: steps[0].channel: no channel named 'marketing' "
                "(channels: email)") in result.output
    _toml(shop, '[channels.marketing]\ntype = "email"\nhost = "smtp.example.com"\n'
                'from = "a@example.com"\n')
    for command in (["journeys", "validate"], ["messages", "validate"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output


def test_validate_says_when_the_message_has_nothing_for_the_channel(shop: Path) -> None:
    _toml(shop, '[channels.marketing]\ntype = "sms"\naccount_sid = "AC1"\n'
                'auth_token = "t"\nfrom = "+46700000000"\n')
    result = CliRunner().invoke(cli, ["journeys", "validate"])
    assert result.exit_code == 1
    assert ("steps[0].channel: message 'hello' has no sms content, which channel "
            "'marketing' sends") in result.output
