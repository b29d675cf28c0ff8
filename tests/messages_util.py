"""Helpers for the messages and outbox tests: people in a real log, small test channels."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from profiles_util import Log

from kanal_collector.channels.base import (
    Channel,
    OutgoingMessage,
    PermanentError,
    SendResult,
    TransientError,
)
from kanal_collector.clock import FakeClock
from kanal_collector.messages import Catalog, Dispatcher, Settings
from kanal_collector.messages.eligibility import Policy

CART = {
    "name": "cart",
    "kind": "marketing",
    "topic": "cart",
    "defaults": {"first_name": "there"},
    "email": {"subject": "Hi {{ traits.first_name }}, your cart",
              "html": "<p>Hello {{ traits.first_name }}</p>",
              "text": "Hello {{ traits.first_name }}"},
    "sms": {"text": "Cart waiting, {{ traits.first_name }}"},
    "push": {"title": "Cart", "body": "{{ traits.first_name }}, come back"},
    "webhook": {"payload": {"user": "{{ traits.first_name }}"}},
    "languages": {"sv": {"email": {"subject": "Hej {{ traits.first_name }}"}}},
}
RECEIPT = {
    "name": "receipt",
    "kind": "transactional",
    "email": {"subject": "Receipt {{ data.order }}", "text": "Thanks for order {{ data.order }}"},
    "sms": {"text": "Order {{ data.order }} confirmed"},
}


def catalog() -> Catalog:
    return Catalog.from_dicts([CART, RECEIPT])


class Recording(Channel):
    """Records every message; answers with a provider id."""

    name = "email"
    kind = "email"
    recipient_identity = "email"

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(settings or {})
        self.sent: list[OutgoingMessage] = []
        self.lock = threading.Lock()
        self.failures: list[Exception] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(message)
        return SendResult(provider_id=f"prov-{message.outbox_id}")


def channel(name: str = "email", kind: str | None = None, identity: str | None = "email",
            *, idempotent: bool = False, **settings: Any) -> Recording:
    """A Recording channel called `name`."""
    cls = type(f"Recording_{name}", (Recording,), {
        "name": name, "kind": kind or name, "recipient_identity": identity,
        "supports_idempotency_key": idempotent})
    return cls(settings)  # type: ignore[no-any-return]


def transient(after: float | None = None) -> TransientError:
    return TransientError("try later", retry_after=after)


def permanent() -> PermanentError:
    return PermanentError("550 no such user")


class World:
    """A log with people, a fake clock, channels and a dispatcher."""

    def __init__(self, path: Path, channels: list[Recording] | None = None,
                 **settings: Any) -> None:
        self.clock = FakeClock(1_700_000_000 + 86_400 * 60)
        self.log = Log(path, self.clock)
        self.channels = channels if channels is not None else [
            channel("email"), channel("sms", identity="phone"),
            channel("push", identity="push_token")]
        self.catalog = catalog()
        self.settings = Settings(**settings)
        self.policy = Policy()
        self.dispatcher = self.make_dispatcher()

    def make_dispatcher(self, **kwargs: Any) -> Dispatcher:
        kwargs.setdefault("before_send", [])
        kwargs.setdefault("settings", self.settings)
        kwargs.setdefault("policy", self.policy)
        return Dispatcher(self.log.db, self.clock, {c.name: c for c in self.channels},
                          self.catalog, **kwargs)

    @property
    def conn(self) -> Any:
        return self.log.conn

    def person(self, user_id: str, **traits: Any) -> int:
        """A trusted identify for `user_id` with traits; returns the profile id."""
        self.log.add("identify", user_id=user_id, trusted=True, traits=traits)
        self.log.process()
        pid = self.log.pid(user_id)
        assert pid is not None
        return pid

    def track(self, user_id: str, event: str, **properties: Any) -> None:
        self.log.add("track", event=event, user_id=user_id, trusted=True,
                     properties=properties)
        self.log.process()

    def enqueue(self, profile_id: int, key: str, **kwargs: Any) -> int:
        from kanal_collector.messages import enqueue
        from kanal_collector.store.db import transaction

        kwargs.setdefault("message", "cart")
        kwargs.setdefault("channel", "email")
        kwargs.setdefault("kind", "marketing")
        kwargs.setdefault("now", self.clock.now())
        kwargs.setdefault("channels", {c.name: c for c in self.channels})
        kwargs.setdefault("catalog", self.catalog)
        with transaction(self.conn) as conn:
            return enqueue(conn, profile_id=profile_id, idempotency_key=key, **kwargs)

    def row(self, outbox_id: int) -> Any:
        from kanal_collector.store import outbox

        return outbox.get(self.conn, outbox_id)

    def events(self, name: str) -> list[dict[str, Any]]:
        from kanal_collector.store.events import BODY_COLUMNS, read_body

        return [{"origin": r[0], "key_kind": r[1], "body": read_body(r[2:])}
                for r in self.conn.execute(
                    f"SELECT origin, key_kind, {BODY_COLUMNS} FROM events WHERE event = ? "
                    "ORDER BY id", (name,))]

    def close(self) -> None:
        self.dispatcher.close()
        self.log.close()
        self.log.db.close()
