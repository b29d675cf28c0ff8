"""Token buckets per (key, client address): a burst is fine, a flood gets 429."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable

_MAX_BUCKETS = 50_000


class RateLimiter:
    """`rate` requests a second with bursts of `burst`; rate 0 turns limiting off."""

    def __init__(self, rate: float, burst: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._monotonic = monotonic
        self._buckets: dict[Hashable, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, who: Hashable) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is free."""
        if self.rate <= 0:
            return 0.0
        now = self._monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= _MAX_BUCKETS and who not in self._buckets:
                    self._evict(now)
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        # Buckets that have refilled completely carry no information: drop them.
        full_after = self.burst / self.rate
        stale = [k for k, (_, last) in self._buckets.items() if now - last >= full_after]
        for k in stale:
            del self._buckets[k]
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()


def retry_after_seconds(wait: float) -> int:
    """A Retry-After header value (whole seconds, at least 1)."""
    return max(1, math.ceil(wait))
