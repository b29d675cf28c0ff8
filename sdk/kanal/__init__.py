"""Kanal's Python SDK: report who your users are and what they buy, from your backend.

    import kanal

    kanal.write_key = "sk_..."            # a secret key of your Kanal source
    kanal.host = "https://kanal.example.com"
    kanal.identify("user-42", {"email": "ada@example.com"})
    kanal.order_completed("user-42", order_id="o-1001", total=59.0, currency="EUR",
                          products=[{"product_id": "sku-1", "price": 29.5, "quantity": 2}])

The module-level functions use one default `Client`, built from the module's settings
(`write_key`, `host`, `flush_at`, ...) on the first call; change settings before that call
or call `shutdown()` to start over. Or build your own `Client(write_key, host=...)`.
"""

from __future__ import annotations

import functools as _functools
import inspect as _inspect
import logging as _logging
import threading as _threading
from collections.abc import Callable as _Callable
from os import PathLike as _PathLike
from typing import Concatenate as _Concatenate
from typing import ParamSpec as _ParamSpec

from ._client import DEFAULT_HOST as _DEFAULT_HOST
from ._client import Client
from ._consumer import OnError as _OnError
from ._exceptions import (
    APIError,
    DeliveryError,
    DroppedError,
    KanalError,
    MessageTooLargeError,
    QueueFullError,
    TransportError,
)
from ._version import __version__

# Settings of the default client (the names of Client's options).
write_key: str | None = None
host: str = _DEFAULT_HOST
flush_at: int = 100
flush_interval: float = 0.5
max_queue_size: int = 10_000
max_retries: int = 10
timeout: float = 15.0
gzip: bool = False
sync_mode: bool = False
send: bool = True
disabled: bool = False
on_error: _OnError | None = None
debug: bool = False
spool_path: str | _PathLike[str] | None = None

_default_client: Client | None = None
_default_lock = _threading.Lock()
_log = _logging.getLogger("kanal")
_P = _ParamSpec("_P")


def _get_default() -> Client | None:
    global _default_client
    client = _default_client
    if client is not None:
        return client
    with _default_lock:
        if _default_client is None:
            if disabled:
                _default_client = Client("disabled", disabled=True)
            elif not write_key:
                _log.error("kanal: kanal.write_key is not set; the event is dropped")
                return None
            else:
                _default_client = Client(
                    write_key, host=host, flush_at=flush_at, flush_interval=flush_interval,
                    max_queue_size=max_queue_size, max_retries=max_retries, timeout=timeout,
                    gzip=gzip, sync_mode=sync_mode, send=send, on_error=on_error,
                    debug=debug, spool_path=spool_path,
                )
        return _default_client


def _delegate(method: _Callable[_Concatenate[Client, _P], None]) -> _Callable[_P, None]:
    name = method.__name__

    @_functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> None:
        client = _get_default()
        if client is not None:
            getattr(client, name)(*args, **kwargs)

    signature = _inspect.signature(method)
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:])
    return call


identify = _delegate(Client.identify)
track = _delegate(Client.track)
page = _delegate(Client.page)
screen = _delegate(Client.screen)
group = _delegate(Client.group)
alias = _delegate(Client.alias)
order_completed = _delegate(Client.order_completed)
order_updated = _delegate(Client.order_updated)
order_refunded = _delegate(Client.order_refunded)
order_cancelled = _delegate(Client.order_cancelled)
checkout_started = _delegate(Client.checkout_started)
product_added = _delegate(Client.product_added)
product_removed = _delegate(Client.product_removed)


def flush(timeout: float | None = None) -> bool:
    """Send what the default client has queued; True when its queue is empty."""
    client = _default_client
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float | None = None) -> None:
    """Flush and stop the default client; the next call builds a new one from the settings."""
    global _default_client
    with _default_lock:
        client, _default_client = _default_client, None
    if client is not None:
        client.shutdown(timeout)


__all__ = [
    "APIError",
    "Client",
    "DeliveryError",
    "DroppedError",
    "KanalError",
    "MessageTooLargeError",
    "QueueFullError",
    "TransportError",
    "__version__",
    "alias",
    "checkout_started",
    "debug",
    "disabled",
    "flush",
    "flush_at",
    "flush_interval",
    "group",
    "gzip",
    "host",
    "identify",
    "max_queue_size",
    "max_retries",
    "on_error",
    "order_cancelled",
    "order_completed",
    "order_refunded",
    "order_updated",
    "page",
    "product_added",
    "product_removed",
    "screen",
    "send",
    "shutdown",
    "spool_path",
    "sync_mode",
    "timeout",
    "track",
    "write_key",
]
