"""The journeys demo, end to end on one machine: SDK → kanal serve → journey → SMTP.

    pip install -e '.[server]' aiosmtpd      # from the repository root
    python examples/demo/run_demo.py

It starts a local SMTP server on 127.0.0.1:1025 (aiosmtpd) that prints the mail it
receives, starts `kanal serve` on examples/demo/kanal.toml with a fresh database, and
then, as a shop's backend would, uses the Python SDK with the source's secret key:
identify a customer (with an email address), then "Product Added". Five seconds later
the demo abandoned-cart journey (journeys/abandoned_cart_fast.yaml) sends the reminder
email, which this script prints; ten seconds after that the SMS goes to the console
channel (a JSON line in kanal serve's output). Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SMTP_PORT = 1025  # the port in kanal.toml's [channels.email]
_KEY_LINE = re.compile(r"^\s*(public|secret|admin) key:\s*(\S+)\s*$")
_LISTEN_LINE = re.compile(r"listening on (http://\S+)")


class PrintingHandler:
    """An aiosmtpd handler that prints each message and keeps it."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        body = mail.get_body(preferencelist=("plain", "html"))
        print(f"\n[smtp] mail for {', '.join(envelope.rcpt_tos)}\n"
              f"[smtp]   From:    {mail['From']}\n"
              f"[smtp]   Subject: {mail['Subject']}\n"
              f"[smtp]   {body.get_content().strip() if body is not None else ''}\n",
              flush=True)
        self.received.append(mail)
        self.arrived.set()
        return "250 OK"


def start_smtp(port: int = SMTP_PORT) -> tuple[Any, PrintingHandler]:
    """A local SMTP server that prints what it receives (stop it with .stop())."""
    from aiosmtpd.controller import Controller

    handler = PrintingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, handler


def start_kanal(db: Path, *, port: int = 8000, config: Path = HERE / "kanal.toml"
                ) -> tuple[subprocess.Popen[str], str, dict[str, str]]:
    """`kanal serve` on a demo config; returns (process, its URL, the keys it printed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kanal_collector", "serve", "--config", str(config),
         "--db", str(db), "--host", "127.0.0.1", "--port", str(port)],
        cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    keys: dict[str, str] = {}
    url = ""
    for line in proc.stdout:
        print(f"[kanal] {line}", end="", flush=True)
        if m := _KEY_LINE.match(line):
            keys[m.group(1)] = m.group(2)
        if m := _LISTEN_LINE.search(line):
            url = m.group(1)
            break
    if not url or "secret" not in keys:
        proc.kill()
        raise SystemExit("kanal serve did not start (is the port free? is the database new?)")

    def echo() -> None:  # keep showing its output (the console channel prints there)
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"[kanal] {line}", end="", flush=True)

    threading.Thread(target=echo, daemon=True).start()
    return proc, url, keys


def shop_backend(url: str, secret_key: str, user_id: str = "ada") -> None:
    """What a shop's backend does: identify the customer, then a product in the cart."""
    import kanal

    client = kanal.Client(secret_key, host=url)
    # Marketing SMS needs an opt-in (README: [messages] opt_in): Ada ticked the box.
    client.identify(user_id, {"email": f"{user_id}@example.com", "phone": "+46701234567",
                              "first_name": "Ada", "subscriptions": {"sms": True}})
    client.product_added(user_id, product_id="p1", price=12.0, name="Kanal mug",
                         cart_id="demo-cart-1")
    client.shutdown()  # flushes both events
    print(f"[sdk] sent identify + Product Added for {user_id}; the reminder is due in 5 s",
          flush=True)


Demo = Callable[[Path, str, dict[str, str], PrintingHandler], int]


def run(demo: Demo, *, config: Path, description: str, wait: float) -> int:
    """Start the SMTP server and `kanal serve` on `config` with a fresh database, run
    `demo(db, url, keys, smtp handler)`, stop both; `demo`'s exit status."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=8000, help="kanal serve's port")
    parser.add_argument("--wait", type=float, default=wait,
                        help=f"seconds to wait for the email (default {wait:g})")
    args = parser.parse_args()
    controller, handler = start_smtp()
    print(f"[smtp] listening on 127.0.0.1:{SMTP_PORT}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kanal-demo-") as tmp:
        db = Path(tmp) / "kanal.db"
        proc, url, keys = start_kanal(db, port=args.port, config=config)
        try:
            return demo(db, url, keys, handler)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            controller.stop()


def abandoned_cart(db: Path, url: str, keys: dict[str, str], handler: PrintingHandler) -> int:
    """The abandoned cart: the reminder email, then the SMS."""
    shop_backend(url, keys["secret"])
    if not handler.arrived.wait(60):
        print("[demo] no email arrived; see kanal serve's output above", flush=True)
        return 1
    print("[demo] the abandoned-cart email arrived; the SMS follows in ~10 s "
          "(a JSON line from the console channel). Ctrl-C to stop.", flush=True)
    try:
        time.sleep(15)
    except KeyboardInterrupt:
        pass
    return 0


def main() -> int:
    return run(abandoned_cart, config=HERE / "kanal.toml",
               description=__doc__.splitlines()[0], wait=60.0)


if __name__ == "__main__":
    sys.exit(main())
