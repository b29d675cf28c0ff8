"""The client: check and copy what the caller passed, stamp it, queue it, return at once."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

from . import _ecommerce as ec
from ._consumer import Batch, Consumer, Item, OnError, Stats, call_on_error, messages_of
from ._exceptions import MessageTooLargeError, QueueFullError
from ._message import (
    DEFAULT_CONTEXT,
    LIBRARY,
    MAX_BATCH_EVENTS,
    MAX_MESSAGE_BYTES,
    Message,
    check_id,
    check_name,
    check_timestamp,
    check_who,
    copy_dict,
    encode,
    finalize,
    rand128,
    reseed,
    time_ns,
)
from ._spool import Spool
from ._transport import Transport

log = logging.getLogger("kanal")

DEFAULT_HOST = "http://127.0.0.1:8000"

Id = str | int
Money = int | float | Decimal
Props = Mapping[str, Any]
Timestamp = datetime | str

_clients: weakref.WeakSet[Client] = weakref.WeakSet()


class Client:
    """Sends events to a Kanal collector from a background thread.

    Every call checks its arguments (raising ``TypeError``/``ValueError`` for bad ones),
    copies what it was given, stamps ``messageId``, ``timestamp`` and
    ``context.library``, queues the event and returns at once. Nothing else ever raises:
    delivery problems are logged and handed to ``on_error(exc, batch)``.

    When the queue holds ``max_queue_size`` events, new events are dropped (the caller is
    never blocked), logged and counted in ``dropped`` - unless ``spool_path`` is set, in
    which case they wait on disk. Clients are safe to share between threads, and a child
    process after ``os.fork()`` starts with an empty queue of its own.
    """

    def __init__(
        self,
        write_key: str,
        *,
        host: str = DEFAULT_HOST,
        flush_at: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_retries: int = 10,
        timeout: float = 15.0,
        gzip: bool = False,
        sync_mode: bool = False,
        send: bool = True,
        disabled: bool = False,
        on_error: OnError | None = None,
        debug: bool = False,
        spool_path: str | os.PathLike[str] | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        """Create a client.

        :param write_key: a source key of the collector (a secret key for a backend).
        :param host: the collector's base URL.
        :param flush_at: events per batch; a full batch is sent at once (at most 2,500).
        :param flush_interval: seconds after which a partial batch is sent.
        :param max_queue_size: events held in memory before new ones are dropped.
        :param max_retries: retries of a failed batch (network errors, 408, 429, 5xx).
        :param timeout: seconds per HTTP request.
        :param gzip: compress request bodies.
        :param sync_mode: send in the calling thread (for scripts and serverless).
        :param send: False builds and logs events but sends nothing.
        :param disabled: True makes every call a no-op (arguments are still checked).
        :param on_error: called as ``on_error(exc, batch)`` for undelivered events.
        :param debug: log every event at DEBUG level to stderr.
        :param spool_path: a SQLite file where events wait until delivered, across
            restarts and collector outages.
        :param shutdown_timeout: bound of `shutdown()` and of the flush at exit.
        """
        if not isinstance(write_key, str) or not write_key:
            raise ValueError("Client(): write_key must be a non-empty str")
        if not isinstance(host, str) or not host.startswith(("http://", "https://")):
            raise ValueError(f"Client(): host must be an http(s) URL, got {host!r}")
        _check_int("flush_at", flush_at, 1, MAX_BATCH_EVENTS)
        _check_int("max_queue_size", max_queue_size, 1, None)
        _check_int("max_retries", max_retries, 0, None)
        _check_seconds("flush_interval", flush_interval)
        _check_seconds("timeout", timeout)
        _check_seconds("shutdown_timeout", shutdown_timeout)
        if on_error is not None and not callable(on_error):
            raise TypeError("Client(): on_error must be callable")
        self.write_key = write_key
        self.host = host
        self.flush_at = flush_at
        self.flush_interval = float(flush_interval)
        self.max_queue_size = max_queue_size
        self.max_retries = max_retries
        self.timeout = float(timeout)
        self.gzip = bool(gzip)
        self.sync_mode = bool(sync_mode)
        self.send = bool(send)
        self.disabled = bool(disabled)
        self.on_error = on_error
        self.debug = bool(debug)
        self.shutdown_timeout = float(shutdown_timeout)
        if debug:
            _enable_debug_logging()
        self._closed = False
        self._spool: Spool | None = None
        if spool_path is not None and self.send and not self.disabled:
            try:
                self._spool = Spool(spool_path)
            except Exception:
                log.exception("kanal: cannot open the spool %s; events stay in memory",
                              spool_path)
        self._setup()
        _clients.add(self)
        if self._spool is not None:
            self._wake.set()
            self._start()  # deliver what an earlier process left in the spool

    def _setup(self) -> None:
        """(Re)create the per-process state: queue, counters, transport, consumer."""
        self._lock = threading.Lock()
        self._queue: deque[Item] = deque()
        self._wake = threading.Event()
        self._stats = Stats()
        self._drop_logged = 0
        self._transport = Transport(
            self.write_key, self.host, gzip=self.gzip, timeout=self.timeout,
            max_retries=self.max_retries,
        )
        self._consumer = Consumer(
            self._queue, self._transport, flush_at=self.flush_at,
            flush_interval=self.flush_interval, on_error=self.on_error, spool=self._spool,
            stats=self._stats, wake=self._wake,
        )
        self._transport.sleep = self._consumer.interruptible_sleep
        self._started = False
        # The hot path tests one flag: async, sending, memory only, open.
        self._fast = (not self.disabled and self.send and not self.sync_mode
                      and self._spool is None and not self._closed and not self.debug)

    # --- public counters -------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Events this process discarded: queue full, over 32 KB, or undeliverable."""
        return self._stats.dropped

    @property
    def sent(self) -> int:
        """Events this process delivered (answered 200)."""
        return self._stats.sent

    # --- the Segment calls -----------------------------------------------------------

    def identify(
        self,
        user_id: Id | None = None,
        traits: Props | None = None,
        *,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Say who a user is and what is known about them (`traits`)."""
        msg: Message = {"type": "identify"}
        check_who(msg, user_id, anonymous_id, "identify()")
        if traits is not None:
            msg["traits"] = copy_dict(traits, "traits", "identify()")
        self._enqueue(msg, context, timestamp, integrations, message_id, "identify()")

    def track(
        self,
        user_id: Id | None = None,
        event: str | None = None,
        properties: Props | None = None,
        *,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Record that a user did something (`event`, e.g. "Signed Up")."""
        msg: Message = {
            "type": "track",
            "event": event if type(event) is str and event else check_name(
                event, "event", "track()"),
        }
        if user_id is not None and type(user_id) is str and user_id and anonymous_id is None:
            msg["userId"] = user_id  # the common case, without the general checks
        else:
            check_who(msg, user_id, anonymous_id, "track()")
        if properties is not None:
            msg["properties"] = copy_dict(properties, "properties", "track()")
        self._enqueue(msg, context, timestamp, integrations, message_id, "track()")

    def page(
        self,
        user_id: Id | None = None,
        name: str | None = None,
        properties: Props | None = None,
        *,
        category: str | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Record a page view (server-rendered pages)."""
        self._view("page", user_id, name, properties, category, anonymous_id, context,
                   timestamp, integrations, message_id)

    def screen(
        self,
        user_id: Id | None = None,
        name: str | None = None,
        properties: Props | None = None,
        *,
        category: str | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Record an app screen view."""
        self._view("screen", user_id, name, properties, category, anonymous_id, context,
                   timestamp, integrations, message_id)

    def _view(
        self, kind: str, user_id: Id | None, name: str | None, properties: Props | None,
        category: str | None, anonymous_id: Id | None, context: Props | None,
        timestamp: Timestamp | None, integrations: Props | None, message_id: Id | None,
    ) -> None:
        where = f"{kind}()"
        msg: Message = {"type": kind}
        check_who(msg, user_id, anonymous_id, where)
        if name is not None:
            msg["name"] = check_name(name, "name", where)
        if category is not None:
            msg["category"] = check_name(category, "category", where)
        if properties is not None:
            msg["properties"] = copy_dict(properties, "properties", where)
        self._enqueue(msg, context, timestamp, integrations, message_id, where)

    def group(
        self,
        user_id: Id | None = None,
        group_id: Id | None = None,
        traits: Props | None = None,
        *,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Put a user in a group (a company, a household, an account)."""
        msg: Message = {"type": "group"}
        check_who(msg, user_id, anonymous_id, "group()")
        if group_id is None:
            raise ValueError("group(): group_id is required")
        msg["groupId"] = check_id(group_id, "group_id", "group()")
        if traits is not None:
            msg["traits"] = copy_dict(traits, "traits", "group()")
        self._enqueue(msg, context, timestamp, integrations, message_id, "group()")

    def alias(
        self,
        previous_id: Id,
        user_id: Id,
        *,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Say that `previous_id` (an earlier id of this person) is now `user_id`."""
        if previous_id is None:
            raise ValueError("alias(): previous_id is required")
        if user_id is None:
            raise ValueError("alias(): user_id is required")
        msg: Message = {
            "type": "alias",
            "previousId": check_id(previous_id, "previous_id", "alias()"),
            "userId": check_id(user_id, "user_id", "alias()"),
        }
        self._enqueue(msg, context, timestamp, integrations, message_id, "alias()")

    # --- e-commerce (Segment e-commerce v2) ------------------------------------------

    def order_completed(
        self,
        user_id: Id | None = None,
        *,
        order_id: Id,
        currency: str,
        products: Sequence[Props],
        total: Money | None = None,
        revenue: Money | None = None,
        subtotal: Money | None = None,
        shipping: Money | None = None,
        tax: Money | None = None,
        discount: Money | None = None,
        coupon: str | None = None,
        affiliation: str | None = None,
        checkout_id: str | None = None,
        cart_id: Id | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report a purchase ("Order Completed"): order_id, currency, products and total
        or revenue are required; each product needs product_id, price and quantity.

        `cart_id` names the cart the order came from: a journey whose goal says
        `same: [cart_id]` then ends only that cart's run (without it, every run)."""
        where = "order_completed()"
        props = ec.order_properties(
            where, properties=properties, order_id=order_id, currency_code=currency,
            product_list=products, need_order_id=True, need_products=True,
            need_amount=("total", "revenue"),
            amounts={"total": total, "revenue": revenue, "subtotal": subtotal,
                     "shipping": shipping, "tax": tax, "discount": discount},
            texts={"coupon": coupon, "affiliation": affiliation, "checkout_id": checkout_id},
            ids={"cart_id": cart_id},
        )
        self._commerce(ec.ORDER_COMPLETED, props, user_id, anonymous_id, context, timestamp,
                       integrations, message_id, where)

    def order_updated(
        self,
        user_id: Id | None = None,
        *,
        order_id: Id,
        currency: str | None = None,
        products: Sequence[Props] | None = None,
        total: Money | None = None,
        revenue: Money | None = None,
        shipping: Money | None = None,
        tax: Money | None = None,
        discount: Money | None = None,
        coupon: str | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report a change to an order ("Order Updated"); currency is required with amounts."""
        where = "order_updated()"
        props = ec.order_properties(
            where, properties=properties, order_id=order_id, currency_code=currency,
            product_list=products, need_order_id=True,
            amounts={"total": total, "revenue": revenue, "shipping": shipping, "tax": tax,
                     "discount": discount},
            texts={"coupon": coupon},
        )
        self._commerce(ec.ORDER_UPDATED, props, user_id, anonymous_id, context, timestamp,
                       integrations, message_id, where)

    def order_refunded(
        self,
        user_id: Id | None = None,
        *,
        order_id: Id,
        currency: str | None = None,
        total: Money | None = None,
        products: Sequence[Props] | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report a refund ("Order Refunded"); a partial refund lists its products."""
        where = "order_refunded()"
        props = ec.order_properties(
            where, properties=properties, order_id=order_id, currency_code=currency,
            product_list=products, need_order_id=True, amounts={"total": total},
        )
        self._commerce(ec.ORDER_REFUNDED, props, user_id, anonymous_id, context, timestamp,
                       integrations, message_id, where)

    def order_cancelled(
        self,
        user_id: Id | None = None,
        *,
        order_id: Id,
        currency: str | None = None,
        total: Money | None = None,
        products: Sequence[Props] | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report a cancelled order ("Order Cancelled")."""
        where = "order_cancelled()"
        props = ec.order_properties(
            where, properties=properties, order_id=order_id, currency_code=currency,
            product_list=products, need_order_id=True, amounts={"total": total},
        )
        self._commerce(ec.ORDER_CANCELLED, props, user_id, anonymous_id, context, timestamp,
                       integrations, message_id, where)

    def checkout_started(
        self,
        user_id: Id | None = None,
        *,
        currency: str,
        products: Sequence[Props],
        order_id: Id | None = None,
        value: Money | None = None,
        revenue: Money | None = None,
        shipping: Money | None = None,
        tax: Money | None = None,
        discount: Money | None = None,
        coupon: str | None = None,
        cart_id: Id | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report the start of a checkout ("Checkout Started"): currency and products
        (and the `cart_id` being checked out, for journeys per cart)."""
        where = "checkout_started()"
        props = ec.order_properties(
            where, properties=properties, order_id=order_id, currency_code=currency,
            product_list=products, need_products=True,
            amounts={"value": value, "revenue": revenue, "shipping": shipping, "tax": tax,
                     "discount": discount},
            texts={"coupon": coupon},
            ids={"cart_id": cart_id},
        )
        self._commerce(ec.CHECKOUT_STARTED, props, user_id, anonymous_id, context, timestamp,
                       integrations, message_id, where)

    def product_added(
        self,
        user_id: Id | None = None,
        *,
        product_id: Id,
        price: Money,
        quantity: int = 1,
        currency: str | None = None,
        cart_id: Id | None = None,
        sku: str | None = None,
        name: str | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report a product put in a cart ("Product Added")."""
        self._product(ec.PRODUCT_ADDED, "product_added()", user_id, product_id, price,
                      quantity, currency, cart_id, sku, name, properties, anonymous_id,
                      context, timestamp, integrations, message_id)

    def product_removed(
        self,
        user_id: Id | None = None,
        *,
        product_id: Id,
        price: Money,
        quantity: int = 1,
        currency: str | None = None,
        cart_id: Id | None = None,
        sku: str | None = None,
        name: str | None = None,
        properties: Props | None = None,
        anonymous_id: Id | None = None,
        context: Props | None = None,
        timestamp: Timestamp | None = None,
        integrations: Props | None = None,
        message_id: Id | None = None,
    ) -> None:
        """Report a product taken out of a cart ("Product Removed")."""
        self._product(ec.PRODUCT_REMOVED, "product_removed()", user_id, product_id, price,
                      quantity, currency, cart_id, sku, name, properties, anonymous_id,
                      context, timestamp, integrations, message_id)

    def _product(
        self, event: str, where: str, user_id: Id | None, product_id: Id, price: Money,
        quantity: int, currency: str | None, cart_id: Id | None, sku: str | None,
        name: str | None, properties: Props | None, anonymous_id: Id | None,
        context: Props | None, timestamp: Timestamp | None, integrations: Props | None,
        message_id: Id | None,
    ) -> None:
        props = ec.product_properties(
            where, properties=properties, product_id=product_id, price=price,
            quantity_=quantity, currency_code=currency,
            texts={"cart_id": cart_id, "sku": sku, "name": name},
        )
        self._commerce(event, props, user_id, anonymous_id, context, timestamp, integrations,
                       message_id, where)

    def _commerce(
        self, event: str, props: dict[str, Any], user_id: Id | None, anonymous_id: Id | None,
        context: Props | None, timestamp: Timestamp | None, integrations: Props | None,
        message_id: Id | None, where: str,
    ) -> None:
        msg: Message = {"type": "track", "event": event}
        check_who(msg, user_id, anonymous_id, where)
        msg["properties"] = props
        self._enqueue(msg, context, timestamp, integrations, message_id, where)

    # --- queueing ----------------------------------------------------------------------

    def _enqueue(
        self, msg: Message, context: Props | None, timestamp: Timestamp | None,
        integrations: Props | None, message_id: Id | None, where: str,
    ) -> None:
        if context is None:
            msg["context"] = DEFAULT_CONTEXT
        else:
            ctx = copy_dict(context, "context", where)
            ctx["library"] = LIBRARY
            msg["context"] = ctx
        if integrations is not None:
            msg["integrations"] = copy_dict(integrations, "integrations", where)
        # Raw clock reading and random bits; the consumer formats them off this thread.
        msg["timestamp"] = time_ns() if timestamp is None else check_timestamp(timestamp, where)
        msg["messageId"] = (rand128() if message_id is None
                            else check_id(message_id, "message_id", where))
        if self._fast:
            queue = self._queue
            if len(queue) < self.max_queue_size:
                queue.append(msg)
                if len(queue) >= self.flush_at and not self._wake.is_set():
                    self._wake.set()
                if not self._started:
                    self._start()
                return
            self._drop_full(msg)
            return
        # From here on the caller has its answer: whatever happens is logged, not raised.
        try:
            self._enqueue_slow(msg)
        except Exception:
            log.exception("kanal: could not queue an event")

    def _enqueue_slow(self, msg: Message) -> None:
        if self.disabled:
            return
        if self._closed:
            self._count_drop(msg, None, "the client is shut down")
            return
        finalize(msg)
        if not self.send:
            log.debug("kanal: not sent (send=False): %s", msg)
            return
        if self.debug:
            log.debug("kanal: queueing %s", msg)
        payload = encode(msg)
        if len(payload) > MAX_MESSAGE_BYTES:
            exc = MessageTooLargeError(
                f"event is {len(payload)} bytes; the limit is {MAX_MESSAGE_BYTES}")
            self._count_drop(msg, exc, str(exc))
            return
        spool = self._spool
        if self.sync_mode:
            row_ids = []
            if spool is not None:
                row_ids = [spool.add(payload)]
            self._consumer.deliver(Batch([payload], row_ids, len(payload)))
            return
        queue = self._queue
        full = len(queue) >= self.max_queue_size
        if spool is not None:
            try:
                row_id = spool.add(payload, owned=not full)
            except Exception:
                log.exception("kanal: could not write to the spool; keeping the event in memory")
            else:
                if full:  # safe on disk; the consumer claims it when there is room
                    self._consumer.wake_claim()
                    return
                queue.append((row_id, payload))
                self._after_append()
                return
        if full:
            self._drop_full(msg)
            return
        queue.append(msg)
        self._after_append()

    def _after_append(self) -> None:
        if len(self._queue) >= self.flush_at:
            self._wake.set()
        if not self._started:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if not self._started and not self._closed:
                self._consumer.start()
                self._started = True

    def _drop_full(self, msg: Message) -> None:
        self._count_drop(msg, QueueFullError(
            f"queue is full ({self.max_queue_size} events)"), None)

    def _count_drop(self, msg: Message, exc: Exception | None, why: str | None) -> None:
        self._stats.add_dropped(1)
        n = self._stats.dropped
        if n >= self._drop_logged * 2 or n - self._drop_logged >= 1000:
            # The first drop, then fewer and fewer lines: a flood must not flood the log.
            self._drop_logged = n
            log.error("kanal: dropped an event (%s); %d dropped so far",
                      why or exc, n)
        if exc is not None:
            call_on_error(self.on_error, exc, messages_of([msg]))

    # --- flushing and shutting down ------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now; wait up to `timeout` seconds (None: no limit).

        Returns True when the queue is empty (delivered, or given up on and reported).
        """
        consumer = self._consumer
        if not self._started:
            if not self._queue:
                return True
            self._start()
            if not self._started:
                return False
        deadline = None if timeout is None else time.monotonic() + timeout
        consumer.claim_now()
        with consumer.idle:
            while consumer.pending() or consumer.busy:
                if not consumer.is_alive():
                    return False
                self._wake.set()
                wait = 0.1
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                consumer.idle.wait(wait)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush (bounded by `timeout`, default `shutdown_timeout`), then stop the thread.

        Events still queued when the time is up are dropped and counted - or stay in the
        spool for the next start. Calls after shutdown are dropped.
        """
        if timeout is None:
            timeout = self.shutdown_timeout
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._fast = False
        deadline = time.monotonic() + timeout
        consumer = self._consumer
        try:
            if self._started:
                self.flush(timeout)
                consumer.stop()
                consumer.join(max(0.0, deadline - time.monotonic()))
                if consumer.is_alive():
                    consumer.aborted.set()  # cut retry waits short
                    consumer.join(1.0)
            left = [item for item in self._queue if type(item) is dict]
            if left:
                self._stats.add_dropped(len(left))
                log.error("kanal: %d events not sent before shutdown", len(left))
            if self._spool is not None:
                self._spool.close()
            self._transport.close()
        except Exception:
            log.exception("kanal: error during shutdown")
        finally:
            _clients.discard(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # --- fork ---------------------------------------------------------------------------

    def _before_fork(self) -> None:
        if self._spool is not None:
            self._spool.before_fork()

    def _after_fork_in_parent(self) -> None:
        if self._spool is not None:
            self._spool.after_fork_in_parent()

    def _after_fork_in_child(self) -> None:
        # The parent still owns and sends what was queued before the fork; the child
        # starts empty (copies would be sent twice) with its own thread, pool and spool id.
        if self._spool is not None:
            self._spool.after_fork_in_child()
        self._setup()


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Client(): {name} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"Client(): {name} must be {bound}, got {value}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Client(): {name} must be a number of seconds, "
                        f"not {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"Client(): {name} must be positive, got {value}")


def _enable_debug_logging() -> None:
    log.setLevel(logging.DEBUG)
    if not log.handlers:
        log.addHandler(logging.StreamHandler())


def _before_fork() -> None:
    for client in list(_clients):
        client._before_fork()


def _after_fork_in_parent() -> None:
    for client in list(_clients):
        client._after_fork_in_parent()


def _after_fork_in_child() -> None:
    reseed()
    for client in list(_clients):
        try:
            client._after_fork_in_child()
        except Exception:
            log.exception("kanal: could not reset a client after fork")


def _at_exit() -> None:
    for client in list(_clients):
        client.shutdown()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(_at_exit)
