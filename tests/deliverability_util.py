"""Helpers for the deliverability tests: a shop with people, sent email, and an app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from messages_util import Recording, World, channel

from kanal_collector.app import close_app, create_app
from kanal_collector.channels.base import OutgoingMessage, SendResult
from kanal_collector.channels.smtp import message_id
from kanal_collector.config import Config


class MessageIdChannel(Recording):
    """Answers with the Message-ID the SMTP channel would have used (its provider id)."""

    def send(self, message: OutgoingMessage) -> SendResult:
        super().send(message)
        return SendResult(provider_id=message_id(message.idempotency_key, "shop.example"))


def email_channel(name: str = "email") -> Recording:
    cls = type(f"Mid_{name}", (MessageIdChannel,), {"name": name, "kind": "email",
                                                     "recipient_identity": "email"})
    return cls({})  # type: ignore[no-any-return]


class Shop:
    """A World (people, recording channels, dispatcher) and an in-process app on its
    database with `sections` as kanal.toml."""

    def __init__(self, path: Path, sections: dict[str, Any] | None = None,
                 channels: list[Recording] | None = None) -> None:
        self.world = World(path, channels or [email_channel("email"),
                                              email_channel("marketing"),
                                              channel("sms", identity="phone")])
        self.sections = sections or {}
        self.config = Config(db=self.world.log.db.target, sections=self.sections)
        try:
            self.app = create_app(self.config, clock=self.world.clock)
        except BaseException:
            self.world.close()
            raise
        self.client = self.app.test_client()

    @property
    def conn(self) -> Any:
        return self.world.conn

    def sent(self, user: str, email: str, key: str | None = None, **kwargs: Any) -> int:
        """A person (made on first use) sent one marketing email; the outbox id."""
        pid = self.world.log.pid(user) or self.world.person(user, email=email)
        oid = self.world.enqueue(pid, key or f"k-{user}-{self.world.clock.now()}", **kwargs)
        self.world.dispatcher.drain()
        row = self.world.row(oid)
        assert row.state == "sent", row
        return oid

    def provider_id(self, oid: int) -> str:
        return str(self.world.row(oid).provider_id)

    def post(self, path: str, body: bytes | str | dict[str, Any] | list[Any],
             headers: dict[str, str] | None = None) -> Any:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        return self.client.post(path, data=data, headers={
            "Content-Type": "application/json", **(headers or {})})

    def feedback(self) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT kind, address, outbox_id, provider FROM email_feedback ORDER BY id"
        ).fetchall()

    def suppressed(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT address, reason FROM email_suppressions"))

    def close(self) -> None:
        close_app(self.app)
        self.world.close()


def write_rsa_key(path: Path, *, traditional: bool = False) -> Path:
    """A fresh 2048-bit RSA key in PEM (PKCS#8, or the traditional OpenSSL form)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    form = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
            else serialization.PrivateFormat.PKCS8)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, form,
                                       serialization.NoEncryption()))
    return path
