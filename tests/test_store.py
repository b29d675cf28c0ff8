"""Storage: migrations, the transaction helper, keys, cursors and the lease (on the
engine under test; the pragmas and user_version on SQLite only)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from kanal_testing import POSTGRES, connect_to, db_at, sqlite_only

from kanal_collector.app import close_app, create_app
from kanal_collector.config import Config
from kanal_collector.store import keys as keystore
from kanal_collector.store import leases
from kanal_collector.store.connection import Connection
from kanal_collector.store.db import REQUEST_CACHE_KIB, Database, transaction
from kanal_collector.store.schema import MIGRATIONS, migrate, schema_version


@pytest.fixture
def conn(tmp_path: Path) -> Connection:
    c = connect_to(db_at(tmp_path / "k.db", migrated=False))
    migrate(c)
    yield c  # type: ignore[misc]
    c.close()


@sqlite_only("pragmas")
def test_pragmas_and_migrations(conn: Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert schema_version(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)  # idempotent


@sqlite_only("pragmas")
def test_thread_connections_get_the_request_cache_and_own_ones_keep_the_default(
        tmp_path: Path) -> None:
    db = Database(tmp_path / "c.db", thread_cache_kib=256)
    try:
        assert db.conn().execute("PRAGMA cache_size").fetchone()[0] == -256
        default = db.connect().execute("PRAGMA cache_size").fetchone()[0]
        assert default != -256  # workers' own connections: SQLite's default
    finally:
        db.close()
    app = create_app(Config(db=str(tmp_path / "app.db"), run_workers=False))
    try:
        conn = app.extensions["kanal"].db.conn()
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -REQUEST_CACHE_KIB
    finally:
        close_app(app)


def test_concurrent_first_migrations(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    race = db_at(tmp_path / "race.db", migrated=False)

    def run() -> None:
        c = connect_to(race)
        try:
            migrate(c)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = connect_to(race)
    try:
        assert schema_version(conn) == len(MIGRATIONS)
        if POSTGRES:  # each migration applied once
            rows = conn.execute("SELECT version FROM kanal_migrations ORDER BY version")
            assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        conn.close()


@sqlite_only("journal modes")
def test_opening_a_new_file_waits_for_a_writer(tmp_path: Path) -> None:
    """While another connection writes a file not yet in WAL mode, SQLite refuses the
    journal mode change at once ("database is locked", no busy wait): opening waits for
    the lock as any other statement does (two processes starting on a new database)."""
    import sqlite3

    from kanal_collector.store.connection import connect_sqlite

    path = str(tmp_path / "new.db")
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    done = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    done.start()
    try:
        conn = connect_sqlite(path, busy_timeout=10.0)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        conn.close()
    finally:
        done.join()
        writer.close()


def test_migrations_are_versioned_and_idempotent(conn: Connection) -> None:
    assert schema_version(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)
    assert {"events", "profiles", "outbox"} <= set(conn.dialect.tables(conn))


def test_newer_schema_is_refused(conn: Connection) -> None:
    if POSTGRES:
        conn.execute("INSERT INTO kanal_migrations (version, applied_at) VALUES (?, 0)",
                     (len(MIGRATIONS) + 1,))
    else:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this Kanal"):
        migrate(conn)


def test_transaction_rolls_back_on_error(conn: Connection) -> None:
    with pytest.raises(ZeroDivisionError), transaction(conn):
        conn.execute("INSERT INTO meta (key, value) VALUES ('a', 'b')")
        raise ZeroDivisionError
    assert conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 0
    assert not conn.in_transaction


def test_keys_create_lookup_revoke(conn: Connection) -> None:
    created = keystore.bootstrap(conn, 1000)
    assert created is not None and set(created) == {"public", "secret", "admin"}
    assert keystore.bootstrap(conn, 2000) is None
    assert created["public"].startswith("pk_") and created["secret"].startswith("sk_")
    info = keystore.lookup_key(conn, created["public"])
    assert info is not None and (info.kind, info.source_name) == ("public", "default")
    # Only hashes and prefixes are stored, except secret keys (HMAC keys of userHash).
    stored = {r[0] for r in conn.execute("SELECT secret FROM keys WHERE secret IS NOT NULL")}
    assert stored == {created["secret"]}
    assert keystore.source_secrets(conn, 1) == [created["secret"]]
    revoked = keystore.revoke_key(conn, info.prefix, 5000)
    assert revoked.revoked_at == 5000
    looked = keystore.lookup_key(conn, created["public"])
    assert looked is not None and looked.revoked
    keystore.revoke_key(conn, created["secret"], 6000)
    assert keystore.source_secrets(conn, 1) == []


@pytest.mark.parametrize("kind,source,message", [
    ("public", "shop", "no source named 'shop'"),
    ("admin", "default", "admin keys belong to no source"),
    ("root", None, "kind must be one of"),
])
def test_key_errors_name_the_problem(conn: Connection, kind: str,
                                     source: str | None, message: str) -> None:
    keystore.bootstrap(conn, 0)
    with pytest.raises(ValueError, match=message):
        keystore.create_key(conn, kind, 0, source=source)


def test_sources(conn: Connection) -> None:
    keystore.create_source(conn, "app", 0)
    with pytest.raises(ValueError, match="already exists"):
        keystore.create_source(conn, "app", 0)
    with pytest.raises(ValueError, match="must not be empty"):
        keystore.create_source(conn, "  ", 0)
    key = keystore.create_key(conn, "public", 0, source="app", name="iOS")
    info = keystore.lookup_key(conn, key)
    assert info is not None and (info.source_name, info.name) == ("app", "iOS")


def test_revoke_needs_an_unambiguous_key(conn: Connection) -> None:
    keystore.bootstrap(conn, 0)
    with pytest.raises(ValueError, match="no key matches"):
        keystore.revoke_key(conn, "pk_nothing", 0)


def test_lease_is_exclusive_until_it_expires(conn: Connection) -> None:
    assert leases.acquire(conn, "workers", "a", now=100.0, ttl=10.0)
    assert not leases.acquire(conn, "workers", "b", now=105.0, ttl=10.0)
    assert leases.acquire(conn, "workers", "a", now=105.0, ttl=10.0)  # renewal
    assert not leases.acquire(conn, "workers", "b", now=114.0, ttl=10.0)
    assert leases.acquire(conn, "workers", "b", now=115.5, ttl=10.0)  # expired: taken over
    assert leases.holder(conn, "workers") == ("b", 125.5)
    leases.release(conn, "workers", "a")  # not a's any more: no effect
    assert leases.holder(conn, "workers") == ("b", 125.5)
    leases.release(conn, "workers", "b")
    assert leases.holder(conn, "workers") is None


@sqlite_only("WITHOUT ROWID")
def test_migration_24_keeps_product_activity_in_key_order(tmp_path: Path) -> None:
    """A version-23 database's product_activity (a rowid table beside its key's index)
    becomes one B-tree in key order; its rows, the product index and the upsert are
    the same afterwards."""
    from kanal_collector.store.product_activity import person_activity, record_activity
    from kanal_collector.store.schema import Migration

    conn = connect_to(db_at(tmp_path / "k.db", migrated=False))
    step = Migration(conn)
    for apply in MIGRATIONS[:23]:
        apply(step)
    conn.execute("PRAGMA user_version = 23")
    rows = [(p, kind, f"sku-{n}", 1000 * n + p, 2000 * n + p, n + 1)
            for p in (3, 1, 2) for kind in ("view", "cart") for n in range(4)]
    conn.executemany("INSERT INTO product_activity VALUES (?, ?, ?, ?, ?, ?)", rows)

    def names() -> set[str]:
        return {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = 'product_activity'")}

    assert "sqlite_autoindex_product_activity_1" in names()
    assert migrate(conn) == len(MIGRATIONS)
    assert names() == {"product_activity", "product_activity_product"}
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'product_activity'"
                       ).fetchone()[0]
    assert sql.rstrip().endswith("WITHOUT ROWID")
    assert sorted(conn.execute("SELECT * FROM product_activity").fetchall()) == sorted(rows)
    record_activity(conn, [(1, "view", "sku-0", 500), (1, "view", "sku-9", 9000)])
    assert conn.execute("SELECT first_at, last_at, count FROM product_activity WHERE "
                        "profile_id = 1 AND kind = 'view' AND product_id = 'sku-0'"
                        ).fetchone() == (1, 500, 2)
    assert person_activity(conn, 1, "view")[:2] == [("sku-9", 9000), ("sku-3", 6001)]
    plan = " ".join(r[-1] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT profile_id FROM product_activity WHERE product_id = ? "
        "AND kind = 'view' AND last_at >= 0", ("sku-1",)))
    assert "product_activity_product" in plan
    conn.close()


def _plans(conn: Connection, run: Callable[[], object]) -> list[str]:
    """The query plans of the statements `run` executes (SQLite's trace gives each with
    its values written in)."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    try:
        run()
    finally:
        conn.set_trace_callback(None)  # type: ignore[attr-defined]
    return [" ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in seen if sql.lstrip().upper().startswith(("SELECT", "INSERT"))]


@sqlite_only("query plans")
def test_an_orders_counted_copy_is_found_through_the_index(conn: Connection) -> None:
    """#18: looked up by order_id alone, the counted copy was a scan of every order's
    copies (22 ms a batch at 10M events); by (event, order_id) it is the index's."""
    from kanal_collector.store.orders import Copy, add_copies, counted_copies

    copies = [Copy(i, "Order Completed", f"o-{i % 40}", False, i <= 40, 10.0 + i, 1000 * i)
              for i in range(1, 120)]  # each order's first copy counts
    add_copies(conn, [(c, False) for c in copies])
    keys = [("Order Completed", "o-3"), ("Order Completed", "o-7"), ("Checkout", "o-3")]
    found = counted_copies(conn, keys)
    assert set(found) == {("Order Completed", "o-3"), ("Order Completed", "o-7")}
    assert found[("Order Completed", "o-3")].event_id == 3
    plans = _plans(conn, lambda: counted_copies(conn, keys))
    assert plans and all("order_copies_order" in p for p in plans), plans
    assert not any("SCAN order_copies" in p for p in plans), plans


@sqlite_only("query plans")
def test_migrations_25_and_28_keep_a_viewers_entry_where_it_is(tmp_path: Path) -> None:
    """#18: product_activity's index by product has no last_at in its key (migration
    25), so a second view of a product changes the row only; and the time of the first
    view comes after (product, kind) (migration 28), so a product's new viewers go at
    its end, not among its viewers by profile id. A price drop's lookup of a product's
    recent viewers still goes through the index, and finds the same people."""
    from kanal_collector.store.product_activity import interested_profiles, record_activity
    from kanal_collector.store.schema import Migration

    conn = connect_to(db_at(tmp_path / "k.db", migrated=False))
    step = Migration(conn)
    for apply in MIGRATIONS[:24]:
        apply(step)
    conn.execute("PRAGMA user_version = 24")
    record_activity(conn, [(p, kind, f"sku-{p % 3}", 1000 * p) for p in range(1, 30)
                           for kind in ("view", "cart")])
    before = interested_profiles(conn, "sku-1", 10_000)
    assert migrate(conn) == len(MIGRATIONS)
    columns = [r[2] for r in conn.execute("PRAGMA index_info(product_activity_product)")]
    assert columns == ["product_id", "kind", "first_at"]
    assert interested_profiles(conn, "sku-1", 10_000) == before
    plans = _plans(conn, lambda: interested_profiles(conn, "sku-1", 10_000))
    assert plans and all("product_activity_product" in p for p in plans), plans
    record_activity(conn, [(4, "view", "sku-1", 50_000), (2, "view", "sku-1", 60_000)])
    assert interested_profiles(conn, "sku-1", 40_000) == {4: "view", 2: "view"}
    in_index = [r[0] for r in conn.execute(
        "SELECT profile_id FROM product_activity INDEXED BY product_activity_product "
        "WHERE product_id = 'sku-1' AND kind = 'view'")]
    assert in_index == [*range(1, 30, 3), 2]  # the new viewer last, the repeat in place
    conn.close()


@sqlite_only("query plans")
def test_keeping_a_journey_day_reads_the_logged_steps_from_the_index(
        conn: Connection) -> None:
    """#18 (migration 26): the steps a day's runs logged come from the index by run,
    without reading each log line's row."""
    from kanal_collector.store.reports import keep_day

    plans = _plans(conn, lambda: keep_day(conn, "welcome", 20_000))
    logged = [p for p in plans if "journey_log" in p and "outbox" not in p]
    assert logged and all("COVERING INDEX journey_log_run" in p for p in logged), plans


@sqlite_only("query plans")
def test_a_persons_runs_in_a_journey_are_read_by_person(conn: Connection) -> None:
    """#18: `kanal journeys why` and a person's page read one person's runs by the index
    by person, not the journey's runs by entry time; oldest first all the same."""
    from kanal_collector.store.explain import person_runs

    with transaction(conn):
        for i in range(60):
            conn.execute(
                "INSERT INTO journey_runs (journey, version, profile_id, state, step, "
                "entered_at, updated_at, context) VALUES ('welcome', 1, ?, 'active', 'a', "
                "?, ?, '{}')", (i % 20, 10_000 - i, 10_000 - i))
    plans = _plans(conn, lambda: person_runs(conn, "welcome", 7))
    assert plans and all("journey_runs_profile" in p for p in plans), plans
    runs = person_runs(conn, "welcome", 7)
    assert [r["entered_at"] for r in runs] == [10_000 - 47, 10_000 - 27, 10_000 - 7]
