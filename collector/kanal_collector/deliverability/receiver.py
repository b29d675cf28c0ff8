"""The endpoint that receives bounces: SMTP (or LMTP) on `[deliverability.bounces] listen`.

`kanal serve` starts it when `listen` is set; `kanal bounces serve` runs it alone. The
bounce domain's MX (or the relay's transport for it) points here; see docs/deliverability.md.

- RCPT TO must be a bounce address of ours whose token is valid for an outbox row
  and the address that row went to (verp.py); anything else is refused with 550, so
  the endpoint is no open mailbox and nobody can bounce an address they weren't sent.
- DATA is read as a DSN or an abuse report (dsn.py); each finding is recorded for the
  row its bounce address names (feedback.record: events, suppression, the row's log)
  in one transaction, and only then answered 250. A database that can't take the
  write answers 451, so the sending server tries again later: nothing is lost.
- Mail that is neither (an auto-reply) is accepted and dropped (logged).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from contextlib import suppress
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..clock import Clock
from ..store import outbox as outbox_store
from ..store.connection import DB_ERRORS
from ..store.db import Database, transaction
from ..tracking.keys import KeyCache
from . import dsn, verp
from .feedback import Report, record
from .settings import Bounces, Settings

log = logging.getLogger("kanal.bounces")


class BounceHandler:
    """aiosmtpd handler: checks recipients, records what comes back."""

    def __init__(self, db: Database, clock: Clock, settings: Settings, keys: KeyCache, *,
                 lmtp: bool = False, wake: threading.Event | None = None) -> None:
        if settings.bounces is None:
            raise ValueError("[deliverability.bounces] is not configured")
        self.db = db
        self.clock = clock
        self.settings = settings
        self.bounces: Bounces = settings.bounces
        self.keys = keys
        self.lmtp = lmtp
        self.wake = wake

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def outbox_of(self, address: str) -> int | None:
        """The outbox row a bounce address is valid for, or None."""
        parsed = verp.parse(address, self.bounces.local, self.bounces.domain)
        if parsed is None:
            return None
        conn = self.db.conn()
        row = outbox_store.get(conn, parsed.outbox_id)
        if row is None or not row.recipient:
            return None
        keys = self.keys.keys(conn, self._now_ms())
        if not verp.verify(keys, parsed, row.recipient):
            keys = self.keys.reload(conn, self._now_ms())
            if not verp.verify(keys, parsed, row.recipient):
                return None
        return row.id

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        """250 for our bounce addresses, 550 for everything else."""
        try:
            found = self.outbox_of(address)
        except DB_ERRORS as exc:
            log.error("bounce address %s not checked: %s", address, exc)
            return "451 4.3.0 temporary failure, try again later"
        if found is None:
            return "550 5.1.1 no such bounce address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the findings of the message for every recipient, then answer."""
        data = envelope.original_content or b""
        count = max(1, len(envelope.rcpt_tos))
        if len(data) > self.bounces.max_size:
            return self._reply("552 5.3.4 message too large", count)
        try:
            recorded = self.receive(data, list(envelope.rcpt_tos))
        except DB_ERRORS as exc:
            log.error("bounce not recorded (the sender will try again): %s", exc)
            return self._reply("451 4.3.0 temporary failure, try again later", count)
        if recorded and self.wake is not None:
            self.wake.set()
        return self._reply("250 2.0.0 OK", count)

    def _reply(self, line: str, count: int) -> str:
        # LMTP answers DATA once per recipient (RFC 2033).
        return "\r\n".join([line] * count) if self.lmtp else line

    def receive(self, data: bytes, recipients: list[str]) -> int:
        """Record a received message for its bounce addresses; reports recorded."""
        parsed = dsn.parse(data)
        if not parsed.findings:
            log.info("mail to %s is no bounce or complaint (%s); dropped",
                     ", ".join(recipients), parsed.kind)
            return 0
        conn = self.db.conn()
        now_ms = self._now_ms()
        done = 0
        with transaction(conn):
            for address in recipients:
                outbox_id = self.outbox_of(address)
                row = None if outbox_id is None else outbox_store.get(conn, outbox_id)
                if row is None or not row.recipient:
                    continue
                # One report about the address the row was sent to: a DSN names the
                # final recipient, which forwarding may have changed.
                finding = _worst(parsed.findings)
                event_id = parsed.message_id or f"{address}:{now_ms}"
                result = record(conn, Report(finding.kind, row.recipient, "dsn", event_id,
                                             outbox_id=row.id, detail=finding.detail),
                                self.settings, now_ms)
                done += int(result is not None and result.new)
        return done


def _worst(findings: tuple[dsn.Finding, ...]) -> dsn.Finding:
    order = {"complaint": 0, "hard": 1, "soft": 2}
    return min(findings, key=lambda f: order[f.kind])


class BounceServer(Controller):
    """aiosmtpd's threaded controller, SMTP or LMTP; port 0 picks a free port."""

    def __init__(self, handler: BounceHandler, host: str, port: int, *,
                 max_size: int) -> None:
        super().__init__(handler, hostname=host, port=port, data_size_limit=max_size,
                         ident="Kanal bounces")
        self.lmtp = handler.lmtp

    def factory(self) -> SMTP:
        """An LMTP or SMTP session."""
        cls = LMTP if self.lmtp else SMTP
        return cls(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        sockets = getattr(self.server, "sockets", None) or []
        if sockets:  # port 0: the port the system picked
            self.port = sockets[0].getsockname()[1]
        # Connect once so aiosmtpd builds its session object (an LMTP server says
        # nothing until spoken to, so don't wait for a greeting).
        with socket.create_connection((self.hostname or "127.0.0.1", self.port), 5.0) as s:
            if not self.lmtp:
                with suppress(OSError):
                    s.recv(1024)


def start_receiver(db: Database, clock: Clock, settings: Settings, keys: KeyCache, *,
                   host: str | None = None, port: int | None = None,
                   wake: threading.Event | None = None) -> BounceServer:
    """Start the endpoint on `host:port` (default: `[deliverability.bounces] listen`)."""
    bounces = settings.bounces
    if bounces is None:
        raise ValueError("[deliverability.bounces] is not configured")
    host = host if host is not None else bounces.host
    port = port if port is not None else bounces.port
    if host is None or port is None:
        raise ValueError("[deliverability.bounces] listen is not set (host:port)")
    handler = BounceHandler(db, clock, settings, keys, lmtp=bounces.protocol == "lmtp",
                            wake=wake)
    server = BounceServer(handler, host, port, max_size=bounces.max_size)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot listen for bounces on {host}:{port}: {exc}") from None
    log.info("receiving bounces for %s on %s:%s (%s)", bounces.domain, host, server.port,
             bounces.protocol)
    return server


def stop_receiver(server: Any) -> None:
    """Stop a running endpoint (safe to call twice)."""
    with suppress(RuntimeError, AssertionError, asyncio.CancelledError):
        server.stop()
