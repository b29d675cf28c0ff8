"""The `console` channel: one JSON line per message, for local development.

Settings (`[channels.console]`):
    path            append to this file instead of writing to standard output
    stands_in_for   email, sms, push or webhook: render the content of that kind and use
                    the recipient a channel of that kind would (the person's email, phone
                    or push token). Default: the table's name when it is one of these
                    (`[channels.sms] type = "console"` shows the SMS and the phone
                    number), else console content (or the email, sms, push, webhook).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .base import Channel, OutgoingMessage, SendResult

STANDS_IN: dict[str, str | None] = {
    "email": "email", "sms": "phone", "push": "push_token", "webhook": None,
}
"""The kinds a console channel can stand in for, and the recipient identity of each."""


class ConsoleChannel(Channel):
    """Print each message as a JSON line (stdout or a file) instead of sending it."""

    name: ClassVar[str] = "console"
    kind: ClassVar[str] = "console"
    recipient_identity: ClassVar[str | None] = None
    supports_idempotency_key: ClassVar[bool] = True

    @classmethod
    def configured(cls, name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """A console channel standing in for another kind takes its kind and recipient."""
        kind = settings.get("stands_in_for", name if name in STANDS_IN else None)
        if kind is None or kind == "console":
            return {}
        if kind not in STANDS_IN:
            raise ValueError(f"stands_in_for must be one of {', '.join(STANDS_IN)}, "
                             f"not {kind!r}")
        return {"kind": kind, "recipient_identity": STANDS_IN[kind]}

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        path = settings.get("path")
        self.path = Path(str(path)) if path else None
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        """Write the message as one JSON line."""
        line = json.dumps({
            "channel": self.name,
            "stands_in_for": self.kind,
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
