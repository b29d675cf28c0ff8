"""`kanal import`: CSV and JSON lines, validation report, idempotent re-runs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from kanal_testing import db_at
from profiles_util import Log

from kanal_collector.cli import cli

ORDERS = """userId,email,event,order_id,revenue,timestamp,category
u1,ann@x.io,Order Completed,1001,"120,50",2024-01-05T10:00:00Z,shoes
,bo@x.io,Order Completed,1002,80,2024-02-01T10:00:00Z,hats
null,,Order Completed,1003,10,2024-02-01T10:00:00Z,hats
u3,,Order Completed,1004,lots,2024-02-01T10:00:00Z,hats
u1,ann@x.io,Order Completed,1001,"120,50",2024-01-05T10:00:00Z,shoes
"""
CUSTOMERS = [
    {"email": "cy@x.io", "first_name": "Cy", "country": "NO"},
    {"userId": "u1", "traits": {"plan": "gold"}, "timestamp": "2024-03-01T00:00:00Z"},
    {"type": "teleport", "userId": "u1"},
]


def test_import_csv_and_jsonl_idempotently(tmp_path: Path) -> None:
    log = Log(tmp_path / "k.db")
    orders = tmp_path / "orders.csv"
    orders.write_text(ORDERS)
    customers = tmp_path / "customers.jsonl"
    customers.write_text("\n".join(json.dumps(c) for c in CUSTOMERS) + "\n{oops\n")
    runner = CliRunner()
    db = ["--db", db_at(tmp_path / "k.db")]
    report = tmp_path / "rejected.jsonl"
    result = runner.invoke(cli, ["import", str(orders), *db, "--report", str(report)])
    # rows were rejected: the valid ones are stored, and the exit status says so
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        f"Error: 2 row(s) rejected; the other rows were stored (all in {report}); "
        "--allow-rejects exits 0 when rejects are expected")
    assert "Imported 5 rows: 3 stored, 0 already there, 2 rejected." in result.output
    assert "line 4: userId 'null' is not a usable id" in result.output
    assert "line 5: revenue must be a number" in result.output
    assert len(report.read_text().splitlines()) == 2
    result = runner.invoke(cli, ["import", str(customers), *db, "--allow-rejects"])
    assert result.exit_code == 0, result.output
    assert "Imported 4 rows: 2 stored, 0 already there, 2 rejected." in result.output
    result = runner.invoke(cli, ["import", str(customers), *db, "--dry-run"])
    assert result.exit_code == 1
    assert "Error: 2 row(s) rejected (--report FILE lists them all)" in result.output
    # re-runs store nothing twice
    result = runner.invoke(cli, ["import", str(orders), *db])
    assert "0 stored, 3 already there" in result.output and result.exit_code == 1
    rows = log.conn.execute("SELECT origin, key_kind, verified FROM events").fetchall()
    assert set(rows) == {("store", "import", 1)}

    log.process()
    ann = log.profile("ann@x.io")
    assert ann is not None
    # the duplicate row is a second purchase of the same order: counted once
    assert ann["computed"]["orders"] == 1 and ann["computed"]["revenue"] == 120.5
    assert ann["traits"]["plan"] == "gold"
    assert {"kind": "email", "value": "ann@x.io"} in ann["identities"]
    bo = log.profile("bo@x.io")
    assert bo is not None and bo["computed"]["revenue"] == 80
    cy = log.profile("cy@x.io")
    assert cy is not None and cy["traits"]["first_name"] == "Cy"
    assert cy["computed"]["country"] == "NO"
    log.close()


def test_import_needs_a_known_source(tmp_path: Path) -> None:
    Log(tmp_path / "k.db").close()
    path = tmp_path / "x.csv"
    path.write_text("userId\nu1\n")
    result = CliRunner().invoke(cli, ["import", str(path), "--db", db_at(tmp_path / "k.db"),
                                      "--source", "nope"])
    assert result.exit_code != 0 and "no source named 'nope'" in result.output


def test_nan_is_not_a_number_in_an_import(tmp_path: Path) -> None:
    Log(tmp_path / "k.db").close()
    path = tmp_path / "orders.csv"
    path.write_text("userId,event,order_id,revenue\nu1,Order Completed,1,NaN\n"
                    "u2,Order Completed,2,Infinity\nu3,Order Completed,3,12.5\n")
    result = CliRunner().invoke(cli, ["import", str(path), "--db", db_at(tmp_path / "k.db")])
    assert result.exit_code == 1
    assert "line 2: revenue must be a number, not 'NaN'" in result.output
    assert "line 3: revenue must be a number, not 'Infinity'" in result.output
    assert "1 stored" in result.output
