"""The journeys demo (examples/demo) for real: aiosmtpd, `kanal serve`, the SDK."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import SmtpCatcher, poll, start_collector

import kanal

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def test_the_demo_sends_the_abandoned_cart_email(tmp_path: Path,
                                                 smtp: tuple[Any, SmtpCatcher]) -> None:
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
        mail = poll(lambda: handler.received, timeout=60)
        assert mail, "no email arrived:\n" + "".join(collector.output)
        [(rcpt, message)] = mail
        assert rcpt == ["ada@example.com"]
        assert message["Subject"] == "Ada, you left Kanal mug in your cart"
        assert message["From"] == "Kanal demo shop <shop@example.com>"
        # then the SMS, on the console channel (a JSON line in serve's output)
        sms = poll(lambda: [line for line in collector.output
                             if '"step": "cart_sms"' in line], timeout=60)
        assert sms, "no SMS on the console:\n" + "".join(collector.output)
    finally:
        collector.stop()
    assert not (DEMO / "kanal.db").exists()
    assert kanal.Client  # the demo backend is the public SDK
