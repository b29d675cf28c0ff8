"""Fork safety and the durable spool: events survive kill -9 and outages, sent once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _sdk_sink import Sink

import kanal
from kanal._spool import Spool

MakeClient = Callable[..., kanal.Client]
SDK = Path(__file__).resolve().parents[2] / "sdk"
PRODUCTS = [{"product_id": "sku-1", "price": 5, "quantity": 2}]


def _fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; the SDK is built for
        # exactly that (gunicorn, celery), so the warning is expected here.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_after_fork_has_its_own_queue_and_consumer(
    sink: Sink, make_client: MakeClient,
) -> None:
    client = make_client(host=sink.url, flush_interval=60, flush_at=1000)
    client.track("parent", "Before Fork")  # queued, consumer running, not yet sent
    assert client._consumer.is_alive()
    pid = _fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            client.track("child", "In Child", {"pid": os.getpid()})
            delivered = client.flush(timeout=10)
            client.shutdown(timeout=5)
            code = 0 if delivered and client.sent == 1 and client.dropped == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [e["event"] for e in sink.events()] == ["In Child"]  # the parent's not copied
    assert client.flush(timeout=10)
    events = sink.wait_for(2)
    assert [e["event"] for e in events] == ["In Child", "Before Fork"]
    assert events[0]["properties"]["pid"] == pid
    assert events[0]["messageId"] != events[1]["messageId"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_module_level_client_in_forked_workers(sink: Sink, tmp_path: Path) -> None:
    kanal.write_key = "k"
    kanal.host = sink.url
    kanal.spool_path = str(tmp_path / "spool.db")
    kanal.identify("master", {"role": "master"})
    children = []
    for n in range(3):
        pid = _fork()
        if pid == 0:
            code = 1
            try:
                kanal.track(f"worker-{n}", "Worker Event")
                code = 0 if kanal.flush(timeout=10) else 2
                kanal.shutdown(timeout=5)
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert kanal.flush(timeout=10)
    events = sink.wait_for(4)
    assert sorted(e.get("userId") for e in events) == [
        "master", "worker-0", "worker-1", "worker-2"]
    kanal.shutdown()
    assert _rows(tmp_path / "spool.db") == 0


CHILD = textwrap.dedent("""
    import sys, time
    import kanal
    client = kanal.Client("sk_spool", host=sys.argv[2], spool_path=sys.argv[1],
                          flush_interval=3600, flush_at=1000)
    for i in range(5):
        client.order_completed(f"user-{i}", order_id=f"o-{i}", total=10 + i, currency="EUR",
                               products=[{"product_id": "sku-1", "price": 5, "quantity": 2}])
    print("queued", flush=True)
    time.sleep(120)
""")


def _rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
    finally:
        conn.close()


def test_spooled_events_survive_kill_9_and_are_sent_on_restart(
    sink: Sink, make_client: MakeClient, tmp_path: Path,
) -> None:
    spool = tmp_path / "kanal-spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spool), "http://127.0.0.1:9"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(SDK)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "queued"
    finally:
        proc.kill()  # SIGKILL: no atexit, no flush, no cleanup
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert _rows(spool) == 5
    assert sink.requests == []

    client = make_client(host=sink.url, spool_path=spool)
    events = sink.wait_for(5)
    assert sorted(e["properties"]["order_id"] for e in events) == [f"o-{i}" for i in range(5)]
    assert len({e["messageId"] for e in events}) == 5
    assert all(e["event"] == "Order Completed" for e in events)
    assert client.flush(timeout=10)
    assert _rows(spool) == 0
    client.shutdown()
    assert len(sink.events()) == 5  # sent once


def test_spooled_events_wait_out_a_collector_outage(
    sink: Sink, make_client: MakeClient, tmp_path: Path,
) -> None:
    spool = tmp_path / "spool.db"
    errors: list[tuple[Exception, list[dict[str, Any]]]] = []
    sink.statuses = [503]
    client = make_client(host=sink.url, spool_path=spool, max_retries=0,
                         on_error=lambda e, b: errors.append((e, b)))
    for i in range(3):
        client.order_completed("u1", order_id=f"o-{i}", total=10, currency="EUR",
                               products=PRODUCTS)
    assert _rows(spool) == 3  # on disk before the calls returned
    assert client.flush(timeout=10)
    (exc, batch), = errors
    assert isinstance(exc, kanal.APIError) and exc.status == 503
    assert _rows(spool) == 3  # not deleted: no 200 yet
    assert client.dropped == 0
    client.shutdown()

    again = make_client(host=sink.url, spool_path=spool)
    events = sink.wait_for(3)
    assert [e["messageId"] for e in events] == [m["messageId"] for m in batch]
    assert again.flush(timeout=10)
    assert _rows(spool) == 0


def test_invalid_events_are_not_kept_forever(
    sink: Sink, make_client: MakeClient, tmp_path: Path,
) -> None:
    spool = tmp_path / "spool.db"
    sink.statuses = [400]
    client = make_client(host=sink.url, spool_path=spool)
    client.track("u1", "Rejected")
    assert client.flush(timeout=10)
    assert _rows(spool) == 0
    assert client.dropped == 1


def test_full_queue_spills_to_the_spool_instead_of_dropping(
    sink: Sink, make_client: MakeClient, tmp_path: Path,
) -> None:
    spool = tmp_path / "spool.db"
    client = make_client(host=sink.url, spool_path=spool, max_queue_size=2)
    for i in range(10):
        client.track("u1", "X", {"i": i})
    assert client.flush(timeout=10)
    events = sink.wait_for(10)
    assert sorted(e["properties"]["i"] for e in events) == list(range(10))
    assert client.dropped == 0
    assert _rows(spool) == 0


def test_claims_are_disjoint_and_skip_live_owners(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    a, b, c = Spool(path), Spool(path), Spool(path)
    try:
        for i in range(10):
            a.add(b'{"n":%d}' % i, owned=False)
        mine = a.add(b'{"owned":"a"}')
        first, second = b.claim(6), c.claim(6)
        assert {r[0] for r in first}.isdisjoint({r[0] for r in second})
        assert len(first) + len(second) == 10
        assert mine not in {r[0] for r in first + second}  # a is alive
        assert b.claim(100) == [] and c.claim(100) == []
        # a dies without giving anything back: its flock goes with it.
        assert a._lock_fd is not None
        os.close(a._lock_fd)
        a._lock_fd = None
        assert [r[0] for r in b.claim(100)] == [mine]
    finally:
        for s in (a, b, c):
            s.close()
