"""The collector stand-in the SDK tests post to (served by the `sink` fixture)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sink:
    """A tiny HTTP server answering POST /v1/batch; records what it received."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Status codes to answer with, in order; 200 once they run out.
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: threading.Condition = field(default_factory=threading.Condition)

    def events(self) -> list[dict[str, Any]]:
        """Every event of every batch answered 200, in arrival order."""
        with self.lock:
            return [e for r in self.requests if r["status"] == 200 for e in r["body"]["batch"]]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` events were accepted (or the timeout passed)."""
        with self.received:
            self.received.wait_for(lambda: len(self.events()) >= count, timeout)
        return self.events()
