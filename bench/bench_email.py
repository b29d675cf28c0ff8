"""Email benchmark: messages/s through Kanal's email channel beside plain smtplib sending
the same messages to the same local SMTP server (aiosmtpd on loopback), same run.

    python bench/bench_email.py              # 2000 messages, 3 rounds each
    python bench/bench_email.py -n 500 -r 1

Baselines keep one smtplib connection open and call send_message(): once building each
EmailMessage (HTML + text, the same headers) in the timed loop, as a hand-written sender
would, and once on messages built beforehand (SMTP wire cost only). The channel builds
each MIME message from rendered content, checks it (line breaks, addresses), and runs
the SMTP transaction on its kept-open connection. Prints figures; never fails on timing.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kanal_collector.channels.base import OutgoingMessage
from kanal_collector.channels.smtp import EmailChannel

HTML = "<html><body><h1>Hi {i}</h1><p>Your cart misses you.</p>" + "<p>…</p>" * 40 + "</body>"
TEXT = "Hi {i}\n\nYour cart misses you.\n" + "…\n" * 40
BASE = "smtplib, EmailMessage built per send"
PREBUILT = "smtplib, messages built beforehand (wire only)"
OURS = "kanal email channel (builds, checks, sends)"
UNSUB = "<https://t.shop.example/u/{i}>, <mailto:unsubscribe@shop.example>"


class Counter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def messages(n: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(
        outbox_id=i, idempotency_key=f"bench-{i}", recipient=f"person{i}@example.com",
        content={"subject": f"Your cart, #{i}", "html": HTML.format(i=i),
                 "text": TEXT.format(i=i)},
        headers={"List-Unsubscribe": UNSUB.format(i=i),
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
        for i in range(n)]


def run_channel(port: int, batch: list[OutgoingMessage]) -> float:
    channel = EmailChannel({"host": "127.0.0.1", "port": port, "tls": "none",
                            "from": "Shop <news@shop.example>", "local_hostname": "bench",
                            "messages_per_connection": len(batch) + 1})
    start = time.perf_counter()
    for m in batch:
        channel.send(m)
    elapsed = time.perf_counter() - start
    channel.close()
    return elapsed


def build(m: OutgoingMessage) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Shop <news@shop.example>"
    msg["To"] = m.recipient
    msg["Subject"] = m.content["subject"]
    for key, value in m.headers.items():
        msg[key] = value
    msg.set_content(m.content["text"])
    msg.add_alternative(m.content["html"], subtype="html")
    return msg


def run_smtplib(port: int, batch: list[OutgoingMessage], *, prebuilt: bool) -> float:
    ready = [build(m) for m in batch] if prebuilt else []
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench") as smtp:
        if prebuilt:
            for msg in ready:
                smtp.send_message(msg)
        else:
            for m in batch:
                smtp.send_message(build(m))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="messages per round")
    parser.add_argument("-r", "--rounds", type=int, default=3)
    args = parser.parse_args()
    handler = Counter()
    controller = _Controller(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        batch = messages(args.n)
        results: dict[str, list[float]] = {BASE: [], PREBUILT: [], OURS: []}
        for _ in range(args.rounds):  # interleaved, so drift hits all alike
            results[BASE].append(args.n / run_smtplib(controller.port, batch, prebuilt=False))
            results[PREBUILT].append(args.n / run_smtplib(controller.port, batch,
                                                          prebuilt=True))
            results[OURS].append(args.n / run_channel(controller.port, batch))
    finally:
        controller.stop()
    expected = 3 * args.n * args.rounds
    print(f"{args.n} messages x {args.rounds} rounds to aiosmtpd on 127.0.0.1 "
          f"(server received {handler.count}/{expected})")
    print(f"{'sender':<48}{'median msg/s':>14}{'best msg/s':>12}")
    for name, rates in results.items():
        print(f"{name:<48}{statistics.median(rates):>14.0f}{max(rates):>12.0f}")
    base = statistics.median(results[BASE])
    ours = statistics.median(results[OURS])
    print(f"channel / smtplib building each message: {ours / base:.2f}x (median)")


if __name__ == "__main__":
    main()
