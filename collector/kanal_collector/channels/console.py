"""The `console` channel: one JSON line per message, for local development.

Settings (`[channels.console]`):
    path    append to this file instead of writing to standard output
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .base import Channel, OutgoingMessage, SendResult


class ConsoleChannel(Channel):
    """Print each message as a JSON line (stdout or a file) instead of sending it."""

    name: ClassVar[str] = "console"
    kind: ClassVar[str] = "console"
    recipient_identity: ClassVar[str | None] = None
    supports_idempotency_key: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        path = settings.get("path")
        self.path = Path(str(path)) if path else None
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        """Write the message as one JSON line."""
        line = json.dumps({
            "channel": self.name,
            "outbox_id": message.outbox_id,
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "content": dict(message.content),
            "headers": dict(message.headers),
            "metadata": dict(message.metadata),
        }, ensure_ascii=False, default=str, sort_keys=True)
        with self._lock:
            if self.path is None:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            else:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
        return SendResult(provider_id=message.idempotency_key)
