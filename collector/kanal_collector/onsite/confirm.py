"""The double opt-in sender, a worker inside `kanal serve`; also expires on-site rows.

A sign-up's confirmation goes to an address that is nobody's identity yet, so it can't
go through the outbox (whose recipients are a profile's verified identities); it goes
through the same channel objects, with the same at-most-once discipline:

1. claim (a write transaction): due queued sign-ups become `sending`; a fresh random
   token is made and only its hash kept;
2. the channel's `send` (email: `[onsite] email_channel`; SMS: `sms_channel`), outside
   any transaction;
3. settle: `sent`, or `queued` again later for a transient error (at most
   MAX_ATTEMPTS), or `failed`. A sign-up found in `sending` when the worker starts was
   maybe sent: it becomes `in_doubt` and is never sent again.

The message is the `confirm_message` file (email subject/html/text, sms text; templates
see `data.confirm_url` and `data.topic`), else a short built-in text.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from ..channels.base import Channel, OutgoingMessage, PermanentError, TransientError
from ..channels.plugins import close_channels
from ..clock import Clock
from ..messages.catalog import Catalog
from ..messages.errors import MessageError
from ..store import onsite as store
from ..store.connection import Connection
from ..store.db import Database, transaction
from .forms import EMAIL, token_hash
from .settings import OnsiteSettings

log = logging.getLogger("kanal.onsite")

MAX_ATTEMPTS = 5
BACKOFF_MS = 60_000
BATCH = 20
SUBJECT = "Please confirm your subscription"
TEXT = ("Please confirm that you want to hear from us: {url}\n\n"
        "If you didn't ask for this, ignore this message and nothing will happen.")


def confirm_url(base_url: str, confirm_page: str | None, token: str) -> str:
    """Where a confirmation link points: the shop's confirm page (its snippet confirms
    and can link the browser), else Kanal's own confirmation page."""
    if confirm_page:
        sep = "&" if "?" in confirm_page else "?"
        return f"{confirm_page}{sep}{urlencode({'kanal_confirm': token})}"
    return f"{base_url.rstrip('/')}/onsite/confirm?{urlencode({'t': token})}"


def _content(catalog: Catalog, name: str | None, kind: str, url: str,
             topic: str | None) -> dict[str, Any]:
    if name:
        message = catalog.get(name)
        return dict(message.render(kind, data={"confirm_url": url, "topic": topic},
                                   channel=kind).content)
    text = TEXT.format(url=url)
    if kind == "sms":
        return {"text": text}
    return {"subject": SUBJECT, "text": text}


class ConfirmationWorker:
    """Sends double opt-in messages and ends expired on-site rows (a Worker)."""

    name = "onsite-confirmations"

    def __init__(self, db: Database, clock: Clock, settings: OnsiteSettings,
                 channels: Mapping[str, Channel], catalog: Catalog) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.channels = dict(channels)
        self.catalog = catalog
        self._conn: Connection | None = None
        self._recovered = False

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.connect()
        return self._conn

    def run_once(self) -> int:
        """Expire on-site rows, then send one batch of confirmations; how many."""
        conn = self._connection()
        now_ms = int(self.clock.now() * 1000)
        with transaction(conn):
            expired = store.expire_queued(conn, now_ms,
                                          default_ttl=self.settings.queue_ttl_ms)
            if not self._recovered:
                for signup_id in store.orphaned_signups(conn):
                    log.warning("sign-up %s was interrupted mid-send: in doubt", signup_id)
                    store.settle_signup(conn, signup_id, "in_doubt", now=now_ms,
                                        reason="interrupted between sending and recording")
                self._recovered = True
            claimed = store.claim_signups(conn, now_ms, BATCH)
            tokens = {}
            for signup in claimed:
                token = secrets.token_urlsafe(32)
                store.set_token(conn, signup.id, token_hash(token))
                tokens[signup.id] = token
        self.catalog.refresh()
        for signup in claimed:
            self._send(conn, signup, tokens[signup.id])
        return len(claimed) + expired

    def _send(self, conn: Connection, signup: store.Signup, token: str) -> None:
        now_ms = int(self.clock.now() * 1000)
        name = self.settings.email_channel if signup.channel == EMAIL \
            else self.settings.sms_channel
        channel = self.channels.get(name)
        if channel is None:
            self._settle(conn, signup.id, "failed", f"no channel {name!r} is configured")
            return
        url = confirm_url(signup.base_url, self.settings.confirm_page, token)
        kind = "email" if signup.channel == EMAIL else "sms"
        try:
            content = _content(self.catalog, self.settings.confirm_message,
                               channel.kind if channel.kind in ("email", "sms") else kind,
                               url, signup.topic)
        except MessageError as exc:
            self._settle(conn, signup.id, "failed", f"confirmation message: {exc}")
            return
        outgoing = OutgoingMessage(
            outbox_id=0, idempotency_key=f"kanal-signup-{signup.id}-{signup.attempts}",
            recipient=signup.address, content=content,
            metadata={"message": self.settings.confirm_message or "confirm_signup",
                      "kind": "transactional", "signup_id": signup.id})
        try:
            channel.send(outgoing)
        except TransientError as exc:
            if signup.attempts >= MAX_ATTEMPTS:
                self._settle(conn, signup.id, "failed", f"gave up: {exc}")
            else:
                self._settle(conn, signup.id, "queued", f"transient: {exc}",
                             next_attempt_at=now_ms + BACKOFF_MS * 2 ** signup.attempts)
        except PermanentError as exc:
            self._settle(conn, signup.id, "failed", f"permanent: {exc}")
        except Exception as exc:
            log.exception("sending the confirmation of sign-up %s failed", signup.id)
            self._settle(conn, signup.id, "in_doubt", f"channel raised {exc!r}")
        else:
            self._settle(conn, signup.id, "sent")

    def _settle(self, conn: Connection, signup_id: int, state: str,
                reason: str | None = None, next_attempt_at: int | None = None) -> None:
        with transaction(conn):
            store.settle_signup(conn, signup_id, state, now=int(self.clock.now() * 1000),
                                reason=reason, next_attempt_at=next_attempt_at)

    def close(self) -> None:
        """Close the worker's connection and its channels."""
        close_channels(self.channels.values())
        if self._conn is not None:
            self._conn.close()
            self._conn = None
