"""Never twice: crashed sends become in doubt (or are retried with the same key)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from kanal_testing import db_at, query
from messages_util import World, channel

from kanal_collector.channels.base import SendResult
from kanal_collector.cli import cli
from kanal_collector.messages.dispatcher import IN_DOUBT_REASON
from kanal_collector.store import outbox


def crash_mid_send(world: World, rows: int = 2) -> tuple[list[int], object]:
    """A dispatcher claims `rows` rows, calls the provider for the first, then "dies"."""
    pid = world.person("u1", email="a@example.com")
    ids = [world.enqueue(pid, f"k{i}") for i in range(rows)]
    dead = world.make_dispatcher(owner="dead")
    claimed = dead._claim(dead._connection())
    assert [r.id for r in claimed] == ids
    prepared = dead._prepare(dead._connection(), claimed[0])
    assert prepared is not None
    world.channels[0].send(prepared.message)  # the provider got it; nothing recorded
    return ids, (dead, prepared)


def test_a_row_maybe_sent_becomes_in_doubt(world: World) -> None:
    (maybe, untouched), _ = crash_mid_send(world)
    fresh = world.make_dispatcher(owner="fresh")
    assert fresh.run_once() == 1  # the row never handed to the provider is sent
    assert world.row(maybe).state == "in_doubt"
    assert world.row(maybe).reason == IN_DOUBT_REASON
    assert world.row(untouched).state == "sent"
    assert world.row(untouched).attempts == 1  # the crashed claim was refunded
    assert Counter(m.outbox_id for m in world.channels[0].sent) == {maybe: 1, untouched: 1}
    fresh.close()


def test_idempotent_channel_retries_with_the_same_key(tmp_path: Path) -> None:
    world = World(tmp_path / "k.db", channels=[channel("email", idempotent=True)])
    try:
        (maybe, _), (_, prepared) = crash_mid_send(world)
        fresh = world.make_dispatcher(owner="fresh")
        fresh.drain()
        assert world.row(maybe).state == "sent"
        keys = [m.idempotency_key for m in world.channels[0].sent if m.outbox_id == maybe]
        assert keys == [prepared.message.idempotency_key] * 2  # type: ignore[attr-defined]
        fresh.close()
    finally:
        world.close()


def test_the_late_recorder_still_records_the_truth(world: World) -> None:
    (maybe, _), (dead, prepared) = crash_mid_send(world)
    fresh = world.make_dispatcher(owner="fresh")
    fresh.recover()
    assert world.row(maybe).state == "in_doubt"
    # The "dead" dispatcher was only slow: what it records wins over the doubt.
    dead._record_sent(dead._connection(), prepared, SendResult("late-1"))  # type: ignore
    assert (world.row(maybe).state, world.row(maybe).provider_id) == ("sent", "late-1")
    dead.close()  # type: ignore[attr-defined]
    fresh.close()


def test_stale_claims_are_recovered_while_running(world: World) -> None:
    (maybe, untouched), _ = crash_mid_send(world)
    fresh = world.make_dispatcher(owner="fresh")
    fresh._recovered_at = world.clock.now()  # as if it started before the crash
    assert fresh.run_once() == 0
    assert world.row(maybe).state == "sending"
    world.clock.advance(world.settings.stale_after + 1)
    fresh.drain()
    assert world.row(maybe).state == "in_doubt"
    assert world.row(untouched).state == "sent"
    fresh.close()


def test_outbox_cli_lists_and_retries_in_doubt_rows(world: World) -> None:
    (maybe, _), _ = crash_mid_send(world)
    fresh = world.make_dispatcher(owner="fresh")
    fresh.drain()
    db = world.log.db.target
    runner = CliRunner()
    listing = runner.invoke(cli, ["outbox", "--db", db])
    assert listing.exit_code == 0, listing.output
    assert "in_doubt: 1" in listing.output and "sent: 1" in listing.output
    only = runner.invoke(cli, ["outbox", "--state", "in_doubt", "--db", db])
    assert f"{maybe}\tin_doubt\temail\tcart" in only.output
    assert "\tsent\t" not in only.output
    shown = runner.invoke(cli, ["outbox", "show", str(maybe), "--db", db])
    assert '"state": "in_doubt"' in shown.output
    refused = runner.invoke(cli, ["outbox", "retry", str(maybe + 1), "--db", db])
    assert refused.exit_code == 1 and "is sent" in refused.output
    done = runner.invoke(cli, ["outbox", "retry", str(maybe), "--db", db])
    assert done.exit_code == 0, done.output
    assert world.row(maybe).state == "queued"
    fresh.drain()
    assert world.row(maybe).state == "sent"
    fresh.close()


_CHILD = r'''
import os, sys, time
from kanal_collector.channels.base import Channel, SendResult
from kanal_collector.clock import SystemClock
from kanal_collector.messages import Catalog, Dispatcher
from kanal_collector.store.db import Database

db_path, sent_file, marker, hang_at, idempotent = sys.argv[1:6]


class FileChannel(Channel):
    name = "email"
    kind = "email"
    recipient_identity = "email"
    supports_idempotency_key = idempotent == "1"

    def send(self, m):
        lines = open(sent_file).read().splitlines() if os.path.exists(sent_file) else []
        if self.supports_idempotency_key and any(l.split()[1] == m.idempotency_key
                                                 for l in lines):
            return SendResult(provider_id="deduplicated")  # the provider knows the key
        with open(sent_file, "a") as f:
            f.write(f"{m.outbox_id} {m.idempotency_key}\n")
            f.flush()
            os.fsync(f.fileno())
        if len(lines) + 1 == int(hang_at):
            open(marker, "w").close()
            time.sleep(3600)  # between the provider call and recording it: kill -9 here
        return SendResult(provider_id=f"p{m.outbox_id}")


catalog = Catalog.from_dicts([{"name": "cart", "email": {"subject": "s", "text": "t"}}])
d = Dispatcher(Database(db_path), SystemClock(), {"email": FileChannel({})}, catalog,
               before_send=[])
d.drain()
d.close()
print("drained")
'''


def _child(tmp_path: Path, db: str, hang_at: int, idempotent: bool) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD, encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "collector"), str(root / "sdk"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, str(script), str(db), str(tmp_path / "sent.txt"),
         str(tmp_path / "hanging"), str(hang_at), "1" if idempotent else "0"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency-key"])
def test_kill_9_between_send_and_record_never_sends_twice(tmp_path: Path,
                                                          idempotent: bool) -> None:
    world = World(tmp_path / "kanal.db")
    pids = [world.person(f"u{i}", email=f"p{i}@example.com") for i in range(4)]
    ids = [world.enqueue(pids[i % 4], f"k{i}") for i in range(8)]
    world.close()

    child = _child(tmp_path, db_at(tmp_path / "kanal.db"), hang_at=3, idempotent=idempotent)
    deadline = time.monotonic() + 30
    while not (tmp_path / "hanging").exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never reached its third send"
        time.sleep(0.02)
    child.kill()  # SIGKILL: no cleanup, no chance to record the third send
    child.communicate(timeout=10)

    again = _child(tmp_path, db_at(tmp_path / "kanal.db"), hang_at=0, idempotent=idempotent)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "drained" in out

    sent = [int(line.split()[0]) for line in
            (tmp_path / "sent.txt").read_text().splitlines()]
    assert len(sent) == len(set(sent)), f"a message went out twice: {sent}"
    states = dict(query(tmp_path / "kanal.db", "SELECT id, state FROM outbox"))
    assert sorted(states) == sorted(ids)
    assert set(states.values()) <= {"sent", "failed", "in_doubt"}
    third = sent[2]
    if idempotent:
        assert set(states.values()) == {"sent"}
        assert sorted(sent) == sorted(ids)
    else:
        assert states[third] == "in_doubt"
        assert [i for i, s in states.items() if s == "in_doubt"] == [third]
        assert sorted(sent) == sorted(ids)  # every other row was sent exactly once


def test_outbox_states_listing_is_complete() -> None:
    assert set(outbox.STATES) == {"queued", "sending"} | outbox.FINAL_STATES
