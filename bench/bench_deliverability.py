"""Deliverability on the send path: what DKIM signing and the suppression-list lookup
(with warm-up, throttles and sunset) cost per message, beside the same path without them,
in the same run.

    python bench/bench_deliverability.py            # defaults below
    python bench/bench_deliverability.py -n 300

1. DKIM: Kanal's email channel sending to a local SMTP server (aiosmtpd on loopback),
   with and without a 2048-bit RSA DKIM key, for message bodies of 1x, 10x and 100x
   the size of a small marketing email (the body hash grows with the body, the RSA
   signature doesn't).
2. Send-time checks: the dispatcher delivering queued marketing rows through a channel
   that only counts, with an empty suppression list and no rules (the baseline), then
   with 1k, 10k and 100k addresses on the list, then with the list plus a warm-up ramp,
   a recipient-domain throttle and the sunset policy.

Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_email import Counter, _Controller  # noqa: E402
from messages_util import World, channel  # noqa: E402

from kanal_collector.channels.base import OutgoingMessage  # noqa: E402
from kanal_collector.channels.smtp import EmailChannel  # noqa: E402
from kanal_collector.config import Config  # noqa: E402
from kanal_collector.messages.controls import Controls  # noqa: E402
from kanal_collector.store import deliverability as store  # noqa: E402
from kanal_collector.store.db import transaction  # noqa: E402

PARAGRAPH = "<p>Your cart misses you. Here is what you left behind.</p>"


def _messages(n: int, size: int) -> list[OutgoingMessage]:
    html = "<html><body>" + PARAGRAPH * (20 * size) + "</body></html>"
    return [OutgoingMessage(outbox_id=i, idempotency_key=f"b-{i}",
                            recipient=f"p{i}@example.com",
                            content={"subject": f"Your cart #{i}", "html": html,
                                     "text": "Your cart misses you.\n" * (20 * size)},
                            headers={"List-Unsubscribe": f"<https://t.shop.example/u/{i}>",
                                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                                     "Feedback-ID": "cart:cart:marketing:shop.example"})
            for i in range(n)]


def _send_all(port: int, batch: list[OutgoingMessage], key: Path | None) -> float:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": port, "tls": "none",
                                "from": "Shop <news@shop.example>", "local_hostname": "b",
                                "messages_per_connection": len(batch) + 1}
    if key is not None:
        settings.update(dkim_selector="k1", dkim_private_key_file=str(key))
    ch = EmailChannel(settings)
    start = time.perf_counter()
    for m in batch:
        ch.send(m)
    elapsed = time.perf_counter() - start
    ch.close()
    return elapsed / len(batch) * 1e6


def bench_dkim(n: int, rounds: int, folder: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = folder / "dkim.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    server = _Controller(Counter(), hostname="127.0.0.1", port=0)
    server.start()
    print(f"1. DKIM signing: {n} messages x {rounds} rounds to aiosmtpd on 127.0.0.1")
    print(f"{'body size':<12}{'bytes':>9}{'without µs/msg':>16}{'with DKIM µs/msg':>18}"
          f"{'DKIM adds':>12}")
    try:
        for size in (1, 10, 100):
            batch = _messages(n, size)
            plain, signed = [], []
            for _ in range(rounds):  # interleaved, so drift hits both alike
                plain.append(_send_all(server.port, batch, None))
                signed.append(_send_all(server.port, batch, pem))
            p, s = statistics.median(plain), statistics.median(signed)
            body = len(batch[0].content["html"]) + len(batch[0].content["text"])
            print(f"{str(size) + 'x':<12}{body:>9}{p:>16.0f}{s:>18.0f}{s - p:>10.0f} µs")
    finally:
        server.stop()


def _world(folder: Path, people: int) -> tuple[World, list[int]]:
    world = World(folder / "kanal.db", [channel("email")])
    for i in range(people):
        world.log.add("identify", user_id=f"u{i}", trusted=True,
                      traits={"email": f"u{i}@{('gmail.com', 'example.com')[i % 2]}"})
    world.log.process()
    return world, [int(world.log.pid(f"u{i}") or 0) for i in range(people)]


def _drain(world: World, pids: list[int], tag: str, controls: Controls) -> float:
    world.dispatcher.close()
    world.dispatcher = world.make_dispatcher(controls=controls)
    for pid in pids:
        world.enqueue(pid, f"{tag}-{pid}")
    start = time.perf_counter()
    done = world.dispatcher.drain()
    elapsed = time.perf_counter() - start
    assert done == len(pids), (done, len(pids))
    return elapsed / len(pids) * 1e6


def _fill_list(world: World, total: int) -> None:
    have = sum(store.count_suppressions(world.conn).values())
    with transaction(world.conn):
        for i in range(have, total):
            store.suppress(world.conn, f"listed{i}@example.org", reason="hard_bounce",
                           detail=None, source="bench", outbox_id=None, now=0)


def bench_checks(n: int, folder: Path) -> None:
    world, pids = _world(folder, n)
    plain = Controls()
    rules = _rules()
    print(f"\n2. Send-time checks: the dispatcher delivering {n} queued marketing rows "
          f"(a channel that only counts)")
    print(f"{'configuration':<58}{'µs/msg':>8}{'vs baseline':>13}")
    _drain(world, pids, "warm", plain)  # caches, the catalog, the first claim: not timed
    before = _drain(world, pids, "base", plain)
    rows = []
    lookups = [(0, _lookup_us(world, pids, plain))]
    for size in (1_000, 10_000, 100_000):
        _fill_list(world, size)
        rows.append((f"suppression list of {size:,} addresses",
                     _drain(world, pids, f"list{size}", plain)))
        lookups.append((size, _lookup_us(world, pids, plain)))
    rows.append(("list of 100,000 + warm-up, throttle and sunset",
                 _drain(world, pids, "rules", rules)))
    with transaction(world.conn):
        world.conn.execute("DELETE FROM email_suppressions")
    after = _drain(world, pids, "base2", plain)
    base = (before + after) / 2
    print(f"{'baseline: empty list, no rules (before / after)':<58}{base:>8.0f}"
          f"{'':>3}({before:.0f} / {after:.0f})")
    for name, cost in rows:
        print(f"{name:<58}{cost:>8.0f}{cost - base:>+11.0f}µs")
    print("\nThe checks alone (eligibility.check + controls.decide for one row, 2000 calls):")
    print(f"{'suppression list':<28}{'no rules µs':>12}{'with warm-up, throttle, sunset':>32}")
    for size, (alone, with_rules) in lookups:
        print(f"{size:>16,} entries{'':<4}{alone:>12.1f}{with_rules:>32.1f}")
    world.close()


def _lookup_us(world: World, pids: list[int], plain: Controls) -> tuple[float, float]:
    """µs per send-time check of one row: eligibility (the list lookup), then decide()
    without and with the deliverability rules."""
    from kanal_collector.messages.controls import decide
    from kanal_collector.messages.eligibility import ChannelInfo, Policy, check, load_person

    rules = _rules()
    conn = world.conn
    info = ChannelInfo("email", "email", "email")
    row = world.row(world.enqueue(pids[0], f"probe-{time.perf_counter_ns()}"))
    person = load_person(conn, pids[0])
    assert person is not None
    out = []
    for controls in (plain, rules):
        start = time.perf_counter()
        for _ in range(2000):
            recipient, _why = check(conn, person, info, kind="marketing", topic=None,
                                    policy=Policy())
            decide(conn, row, person, "email", 0, controls, channel_kind="email",
                   recipient=recipient)
        out.append((time.perf_counter() - start) / 2000 * 1e6)
    world.dispatcher.drain()
    return out[0], out[1]


def _rules() -> Controls:
    return Controls.from_config(Config(sections={
        "channels": {"email": {"from": "news@shop.example"}},
        "deliverability": {"warmup": {"shop.example": {"ramp": [10**9]}},
                           "throttle": {"gmail.com": {"per_hour": 10**9}},
                           "sunset_days": 180}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="messages per measurement")
    parser.add_argument("-r", "--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_dkim(args.n, args.rounds, Path(tmp))
        bench_checks(args.n, Path(tmp))


if __name__ == "__main__":
    main()
