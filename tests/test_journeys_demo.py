"""The journeys demo (examples/demo) for real: aiosmtpd, `kanal serve`, the SDK."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from kanal_testing import start_collector

import kanal

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


class _Handler:
    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(
            envelope.original_content or b"", policy=policy.default)))
        return "250 OK"


class _Controller(Controller):
    """aiosmtpd's Controller on an ephemeral port (port 0)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp() -> Iterator[tuple[_Controller, _Handler]]:
    handler = _Handler()
    controller = _Controller(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def _poll(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    return check()


def test_the_demo_sends_the_abandoned_cart_email(tmp_path: Path,
                                                 smtp: tuple[_Controller, _Handler]) -> None:
    controller, handler = smtp
    text = (DEMO / "kanal.toml").read_text()
    assert "port = 1025" in text
    config = tmp_path / "kanal.toml"
    config.write_text(text.replace("port = 1025", f"port = {controller.port}"))
    # cwd = the demo directory: its relative journeys and messages paths are used as is
    collector = start_collector(tmp_path / "kanal.db", args=["--config", str(config)],
                                cwd=DEMO)
    try:
        sys.path.insert(0, str(DEMO))
        try:
            import run_demo
        finally:
            sys.path.remove(str(DEMO))
        run_demo.shop_backend(collector.url, collector.secret_key)
        mail = _poll(lambda: handler.received, timeout=60)
        assert mail, "no email arrived:\n" + "".join(collector.output)
        [(rcpt, message)] = mail
        assert rcpt == ["ada@example.com"]
        assert message["Subject"] == "Ada, you left Kanal mug in your cart"
        assert message["From"] == "Kanal demo shop <shop@example.com>"
        # then the SMS, on the console channel (a JSON line in serve's output)
        sms = _poll(lambda: [line for line in collector.output
                             if '"step": "cart_sms"' in line], timeout=60)
        assert sms, "no SMS on the console:\n" + "".join(collector.output)
    finally:
        collector.stop()
    assert not (DEMO / "kanal.db").exists()
    assert kanal.Client  # the demo backend is the public SDK
