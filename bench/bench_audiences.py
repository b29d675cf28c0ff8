"""Ads audience sync benchmark: the cost per member of a first round (everyone sent)
and of an incremental round with 1 % churn (0.5 % leave the segment, 0.5 % enter), at
10k and 100k members (1× and 10×), beside baselines measured in the same run: reading
the segment's members, and reading each member's profile and identities and hashing
their email and phone (the least any sync must do).

    python bench/bench_audiences.py                  # 10,000 and 100,000 members
    python bench/bench_audiences.py --sizes 20000

The destination is the real `meta` one, sending to a local stand-in of Meta's endpoint
(tests/audience_standin.py, its own process on loopback, logging every request to disk)
in batches of 10,000 rows. Profiles (email, E.164 phone, advertising consent) are
written through Kanal's store. Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kanal_collector import contacts
from kanal_collector.audiences.plan import make_plan
from kanal_collector.audiences.plugins import build_destination
from kanal_collector.audiences.settings import AudienceSettings
from kanal_collector.audiences.sync import AudienceSync
from kanal_collector.clock import FakeClock
from kanal_collector.store import audiences as audience_store
from kanal_collector.store import identities as identity_store
from kanal_collector.store import profiles as store
from kanal_collector.store import segments as segment_store
from kanal_collector.store.cursors import set_position
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.schema import migrate

ROOT = Path(__file__).resolve().parents[1]
NOW = 1_790_000_000_000


def add_people(db: Database, first: int, count: int) -> list[int]:
    """`count` people in segment `vips` with an email, a phone and advertising consent."""
    conn = db.conn()
    ids = []
    with transaction(conn):
        for n in range(first, first + count):
            state = {"t": {"email": [f"person{n}@example.com", NOW, n],
                           "phone": [f"+4670{n:07d}", NOW, n], "vip": [True, NOW, n]},
                     "consent": {"advertising": [True, NOW, n]}, "first": NOW, "last": NOW}
            pid = store.create_profile(conn, NOW, state)
            ids.append(pid)
            identity_store.add_identities(conn, [("email", f"person{n}@example.com", pid, None),
                                        ("phone", f"+4670{n:07d}", pid, None)])
        segment_store.set_memberships(conn, [("vips", pid, True) for pid in ids], NOW)
    return ids


def cold_caches() -> None:
    """Forget the normalised emails and phones (each measurement starts without them)."""
    contacts._check_email.cache_clear()
    contacts._check_phone.cache_clear()


def baselines(db: Database) -> tuple[float, float]:
    """(seconds to read the members, seconds to read their profiles and hash email and
    phone as a sync must)."""
    cold_caches()
    conn = db.conn()
    started = time.perf_counter()
    members = sorted(audience_store.segment_member_ids(conn, "vips"))
    read = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, len(members), 1000):
        chunk = members[i:i + 1000]
        store.load_states(conn, chunk)
        for values in identity_store.profiles_identities(conn, chunk).values():
            for _kind, value in values:  # stored normalised (contacts.py), as a sync reads
                hashlib.sha256(value.encode()).hexdigest()
    return read, time.perf_counter() - started


def timed_round(db: Database, settings: AudienceSettings, clock: FakeClock
                ) -> dict[str, Any]:
    """One round, its phases timed: decide, write the decisions, send (over HTTP)."""
    destination = build_destination(settings)
    conn = db.conn()
    sync = AudienceSync(conn, settings, destination, clock)
    cold_caches()
    started = time.perf_counter()
    plan = make_plan(conn, settings, destination)
    decided = time.perf_counter()
    sync.open_round(plan, "bench")
    written = time.perf_counter()
    outcome = sync.step("bench")
    sent = time.perf_counter()
    destination.close()
    assert outcome.state == "done", outcome
    return {"decide": decided - started, "write": written - decided, "send": sent - written,
            "total": sent - started, "batches": outcome.batches,
            "in": plan.entering, "out": plan.leaving}


def run(size: int, port: int, tmp: Path) -> dict[str, Any]:
    db = Database(tmp / f"bench{size}.db", synchronous="FULL")
    conn = db.conn()
    store.widen_cache(conn)  # as the audience worker and `kanal audiences sync` do
    migrate(conn)
    with transaction(conn):
        segment_store.put_segment_definitions(
            conn, {"vips": {"all": [{"trait": "vip", "eq": True}]}}, NOW)
        set_position(conn, "processor", 1)
    ids = add_people(db, 0, size)
    settings = AudienceSettings(name="ads", destination="meta", segment="vips", table={
        "audience_id": "2385000", "access_token": "t",
        "base_url": f"http://127.0.0.1:{port}"})
    clock = FakeClock(NOW / 1000)
    read, hashed = baselines(db)
    first = timed_round(db, settings, clock)
    churn = size // 200  # 0.5 % leave, 0.5 % enter: 1 % churn
    with transaction(conn):
        segment_store.set_memberships(
            conn, [("vips", pid, False) for pid in ids[::200][:churn]], NOW)
    add_people(db, size, churn)
    again = timed_round(db, settings, clock)
    db.close()
    return {"size": size, "read": read, "hash": hashed, "first": first, "again": again}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as where:
        tmp = Path(where)
        port_file = tmp / "port"
        stand_in = subprocess.Popen([sys.executable, str(ROOT / "tests/audience_standin.py"),
                                     str(port_file), str(tmp / "requests.jsonl")])
        try:
            while not port_file.exists():
                time.sleep(0.05)
            port = int(port_file.read_text())
            results = [run(size, port, tmp) for size in args.sizes]
        finally:
            stand_in.kill()
            stand_in.wait()
    for r in results:
        n = r["size"]
        f, a = r["first"], r["again"]
        changed = a["in"] + a["out"]
        print(f"{n:,} members")
        print(f"  first round: {f['total']:.2f} s = {f['total'] / n * 1e6:.1f} µs per member "
              f"(decide {f['decide']:.2f} s, write {f['write']:.2f} s, send "
              f"{f['send']:.2f} s in {f['batches']} requests)")
        print(f"  1 % churn ({a['in']:,} in, {a['out']:,} out): {a['total'] * 1000:.0f} ms = "
              f"{a['total'] / n * 1e6:.2f} µs per member, "
              f"{a['total'] / max(changed, 1) * 1e6:.0f} µs per change (decide "
              f"{a['decide'] * 1000:.0f} ms, write {a['write'] * 1000:.0f} ms, send "
              f"{a['send'] * 1000:.0f} ms in {a['batches']} requests)")
        print(f"  baselines (same run): reading the members {r['read'] * 1000:.0f} ms "
              f"({r['read'] / n * 1e6:.2f} µs each); reading profiles and hashing email and "
              f"phone {r['hash']:.2f} s ({r['hash'] / n * 1e6:.1f} µs each)")
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        scale = hi["size"] / lo["size"]

        def grow(key: str, sub: str | None = None) -> float:
            a = hi[key][sub] if sub else hi[key]
            b = lo[key][sub] if sub else lo[key]
            return float(a / b)

        print(f"growth {lo['size']:,} → {hi['size']:,} members ({scale:g}×): first round "
              f"{grow('first', 'total'):.1f}×, 1 % churn round {grow('again', 'total'):.1f}×, "
              f"reading members {grow('read'):.1f}×, reading and hashing "
              f"{grow('hash'):.1f}×")


if __name__ == "__main__":
    main()
