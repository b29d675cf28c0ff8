"""The parts one collector shares between its routes and its workers."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field

from flask import current_app

from .clock import Clock
from .config import Config
from .ingest.auth import KeyCache
from .ingest.ratelimit import RateLimiter
from .ingest.suppress import Suppressions
from .ingest.writer import EventWriter
from .store.db import Database


@dataclass
class Runtime:
    """Storage, clock, key cache, limiter, writer and the processor's wake-up signal."""

    config: Config
    db: Database
    clock: Clock
    writer: EventWriter
    keys: KeyCache
    limiter: RateLimiter
    suppressions: Suppressions
    wake: threading.Event = field(default_factory=threading.Event)
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )


def get_runtime() -> Runtime:
    """The runtime of the app handling the current request."""
    runtime: Runtime = current_app.extensions["kanal"]
    return runtime
