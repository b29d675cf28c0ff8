"""A merge moves a person's rows through indexes: no statement of the processor's batch
that merges two profiles reads a whole table that grows with the shop (#18: three did,
once per merge, and a tenth of bench_scale's people merge when they log in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kanal_testing import full_scans
from profiles_util import Log

from kanal_collector.store.db import Database

SMALL = {
    "suppressions": "`SELECT 1 … LIMIT 1`: is the list empty, one row read",
}
"""Tables a merge may scan, and why that reads next to nothing."""


def _traced(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[bool]]:
    """Statements run on every connection opened from now on, while on[0] is True."""
    statements: list[str] = []
    on = [False]
    connect = Database.connect

    def traced(self: Database) -> Any:
        conn = connect(self)
        conn.set_trace_callback(lambda sql: on[0] and statements.append(sql))
        return conn

    monkeypatch.setattr(Database, "connect", traced)
    return statements, on


def test_a_merge_reads_no_growing_table_whole(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    statements, on = _traced(monkeypatch)
    log = Log(tmp_path / "k.db", sqlite=True)
    try:
        log.add("identify", user_id="u1", trusted=True, traits={"email": "ann@x.io"})
        log.add("page", anon="a9")
        log.add("track", event="Product Viewed", anon="a9", properties={"product_id": "p1"})
        log.process()
        on[0] = True
        log.add("identify", user_id="u1", anon="a9")  # the visitor logs in: a merge
        log.process()
        on[0] = False
        conn = log.conn
        assert conn.execute("SELECT count(*) FROM merges").fetchone()[0] == 1
        scans = full_scans(conn, statements)
        assert len(statements) > 50  # the whole batch was traced
        assert {t: s for t, s in scans.items() if t not in SMALL} == {}
    finally:
        log.close()
