"""The background consumer: takes queued events, batches them, sends them, acknowledges.

Tests drive it without a thread: `next()` builds one batch, `upload()` sends one,
`drain()` sends everything queued.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import APIError, DeliveryError, KanalError, MessageTooLargeError
from ._message import (
    BATCH_PAYLOAD_BUDGET,
    MAX_MESSAGE_BYTES,
    Message,
    encode,
    finalize,
)
from ._spool import Row, Spool
from ._transport import Transport

log = logging.getLogger("kanal")

#: A queued event: a message dict (memory only) or a spooled (row id, encoded bytes).
Item = Message | Row
OnError = Callable[[Exception, list[Message]], object]

_HEARTBEAT_SECONDS = 60.0
_CLAIM_SECONDS = 30.0
_MAX_OUTAGE_PAUSE = 300.0


class Stats:
    """Counters shared by a client and its consumer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0

    def add_sent(self, n: int) -> None:
        with self._lock:
            self.sent += n

    def add_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped += n


@dataclass
class Batch:
    """Encoded messages ready to post, and the spool rows they came from."""

    payloads: list[bytes] = field(default_factory=list)
    row_ids: list[int] = field(default_factory=list)
    size: int = 0

    def __len__(self) -> int:
        return len(self.payloads)

    def messages(self) -> list[Message]:
        """The messages as sent, for on_error."""
        return [json.loads(p) for p in self.payloads]


def call_on_error(on_error: OnError | None, exc: Exception, messages: list[Message]) -> None:
    """Call the user's callback; a broken one is logged, never allowed to break us."""
    if on_error is None:
        return
    try:
        on_error(exc, messages)
    except Exception:
        log.exception("kanal: on_error callback raised")


class Consumer(threading.Thread):
    """Batches by count (`flush_at`), bytes (under 500 KB) and time (`flush_interval`)."""

    def __init__(
        self,
        queue: deque[Item],
        transport: Transport,
        *,
        flush_at: int = 100,
        flush_interval: float = 0.5,
        on_error: OnError | None = None,
        spool: Spool | None = None,
        stats: Stats | None = None,
        wake: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="kanal-consumer", daemon=True)
        self.queue = queue
        self.transport = transport
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.on_error = on_error
        self.spool = spool
        self.stats = stats or Stats()
        self.wake = wake or threading.Event()
        self.clock = clock
        self.idle = threading.Condition()
        self.busy = False
        self.stopping = False
        self.aborted = threading.Event()
        self._carry: tuple[bytes, int | None] | None = None
        # Claim rows nobody owns at once (left by a dead process), then now and then.
        self.claim_at = clock()
        self.outages = 0
        self._heartbeat_at = clock()

    # --- one step at a time (tests call these) ---------------------------------------

    def pending(self) -> bool:
        """Whether anything is waiting to be sent."""
        return bool(self.queue) or self._carry is not None

    def next(self) -> Batch:
        """Take the next batch off the queue; oversize events are dropped here."""
        batch = Batch()
        queue = self.queue
        limit = self.flush_at
        row_id: int | None
        if self._carry is not None:
            payload, row_id = self._carry
            self._carry = None
            self._add(batch, payload, row_id)
        while len(batch.payloads) < limit:
            try:
                item = queue.popleft()
            except IndexError:
                break
            if isinstance(item, tuple):
                row_id, payload = item
            else:
                row_id = None
                try:
                    payload = encode(finalize(item))
                except Exception as exc:  # a value nothing could encode
                    self._drop([item], KanalError(f"cannot encode event: {exc}"), None)
                    continue
            if len(payload) > MAX_MESSAGE_BYTES:
                self._drop_oversize(payload, row_id)
                continue
            if batch.size + len(payload) + 1 > BATCH_PAYLOAD_BUDGET:
                self._carry = (payload, row_id)
                break
            self._add(batch, payload, row_id)
        return batch

    @staticmethod
    def _add(batch: Batch, payload: bytes, row_id: int | None) -> None:
        batch.payloads.append(payload)
        batch.size += len(payload) + 1
        if row_id is not None:
            batch.row_ids.append(row_id)

    def upload(self) -> bool:
        """Send one batch; True if it was delivered."""
        batch = self.next()
        if not batch:
            return False
        return self.deliver(batch)

    def deliver(self, batch: Batch) -> bool:
        """Post a batch, then acknowledge it (spool rows deleted) or report it failed."""
        try:
            self.transport.send(batch.payloads)
        except DeliveryError as exc:
            self._failed(batch, exc)
            return False
        except Exception as exc:  # a bug of ours or of requests: report, keep running
            log.exception("kanal: unexpected error while sending")
            self._failed(batch, exc)
            return False
        if batch.row_ids and self.spool is not None:
            try:
                self.spool.delete(batch.row_ids)
            except Exception:
                # Sent but still on disk: the next start resends it and the collector
                # drops the duplicate by messageId.
                log.exception("kanal: could not delete delivered events from the spool")
        self.outages = 0
        self.stats.add_sent(len(batch))
        log.debug("kanal: delivered %d events", len(batch))
        return True

    def drain(self) -> None:
        """Send everything queued now (and what the spool holds for us, when due)."""
        while not self.aborted.is_set():
            while self.pending() and not self.aborted.is_set():
                self.upload()
            if not self.claim():
                break

    def claim(self) -> bool:
        """Move spooled rows nobody owns into the queue when due; True if any came."""
        spool = self.spool
        if spool is None:
            return False
        now = self.clock()
        if now >= self._heartbeat_at:
            spool.heartbeat()
            self._heartbeat_at = now + _HEARTBEAT_SECONDS
        if now < self.claim_at:
            return False
        self.claim_at = now + _CLAIM_SECONDS
        try:
            rows = spool.claim(max(self.flush_at * 10, 1000))
        except Exception:
            log.exception("kanal: could not read the spool")
            return False
        if rows:
            log.debug("kanal: claimed %d spooled events", len(rows))
            self.queue.extend(rows)
        return bool(rows)

    def claim_now(self) -> None:
        """Make the next drain claim unowned spool rows (unless pausing for an outage)."""
        if self.outages == 0:
            self.claim_at = self.clock()

    def wake_claim(self) -> None:
        """A row was spilled to the spool: claim it when due."""
        self.claim_now()
        self.wake.set()

    def _failed(self, batch: Batch, exc: Exception) -> None:
        n = len(batch)
        status = exc.status if isinstance(exc, APIError) else None
        keep = getattr(exc, "retryable", False) or status in (401, 403)
        if batch.row_ids and self.spool is not None and keep:
            # Outage or wrong key: the events stay on disk and are tried again later.
            try:
                self.spool.release(batch.row_ids)
            except Exception:
                log.exception("kanal: could not release spooled events")
            self.outages += 1
            pause = min(_MAX_OUTAGE_PAUSE, _CLAIM_SECONDS * 2 ** (self.outages - 1))
            self.claim_at = self.clock() + pause
            log.error("kanal: %d events not delivered, kept in the spool (retry in %.0fs): %s",
                      n, pause, exc)
            call_on_error(self.on_error, exc, batch.messages())
            return
        self._drop(batch.messages(), exc, batch.row_ids)

    def _drop(self, messages: list[Message], exc: Exception, row_ids: list[int] | None) -> None:
        if row_ids and self.spool is not None:
            try:
                self.spool.delete(row_ids)
            except Exception:
                log.exception("kanal: could not delete dropped events from the spool")
        self.stats.add_dropped(len(messages))
        log.error("kanal: dropped %d events: %s", len(messages), exc)
        call_on_error(self.on_error, exc, messages)

    def _drop_oversize(self, payload: bytes, row_id: int | None) -> None:
        exc = MessageTooLargeError(
            f"event is {len(payload)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
        message: Message
        try:
            message = json.loads(payload)
        except ValueError:
            message = {}
        self._drop([message], exc, [row_id] if row_id is not None else None)

    # --- the thread ------------------------------------------------------------------

    def run(self) -> None:
        """Wake on `flush_at`, a flush, or every `flush_interval`; send what is queued."""
        while True:
            self.wake.wait(self.flush_interval)
            self.wake.clear()
            self.busy = True
            try:
                self.drain()
            except Exception:  # never let the consumer die
                log.exception("kanal: consumer error")
            finally:
                self.busy = False
            with self.idle:
                self.idle.notify_all()
            if self.stopping and (not self.pending() or self.aborted.is_set()):
                break

    def interruptible_sleep(self, seconds: float) -> bool:
        """Wait for a retry; False (give up) if the client is shutting down meanwhile."""
        return not self.aborted.wait(seconds)

    def stop(self) -> None:
        """Finish what is queued, then end (see Client.shutdown for the bound)."""
        self.stopping = True
        self.wake.set()


def messages_of(items: list[Any]) -> list[Message]:
    """Queued items as messages, for on_error when they are dropped unsent."""
    out: list[Message] = []
    for item in items:
        if type(item) is dict:
            out.append(finalize(item))
        else:
            out.append(json.loads(item[1]))
    return out
