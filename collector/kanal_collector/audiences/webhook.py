"""The `webhook` destination: each batch is a signed JSON POST to a receiver of yours.

Settings (`[audiences.NAME]`, destination = "webhook"): the webhook channel's (`url`,
`secret`, `timeout`, `max_redirects`, `headers`, `allow_private`: docs/channels.md)
and `batch_size` (rows per request, default 1,000).

The body is `{"audience": NAME, "action": "add" | "remove", "members": [ROW, …]}`, each
ROW the hashed identifiers of generic.py. It is sent exactly as the webhook channel sends
(channels/webhook.py, reused): `X-Kanal-Signature: t=<unix>,v1=<hex>` is HMAC-SHA256
keyed with `secret` of `"<t>.<body>"`; `Idempotency-Key` is the same for the same batch,
so a receiver can drop a batch sent again after a crash; only public addresses unless
`allow_private`; 429, 5xx and network errors are retried later, other statuses refuse.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..channels.base import OutgoingMessage
from ..channels.base import PermanentError as ChannelPermanent
from ..channels.base import TransientError as ChannelTransient
from ..channels.webhook import WebhookChannel
from .destination import BatchResult, Destination, Request, Row
from .errors import PermanentError, TransientError
from .generic import generic_row
from .http import setting_int
from .person import Person

MAX_ROWS = 10_000


class WebhookDestination(Destination):
    """POSTs batches of hashed members, signed like the webhook channel."""

    name: ClassVar[str] = "webhook"
    max_batch: ClassVar[int] = MAX_ROWS

    def __init__(self, settings: Mapping[str, Any], *, audience: str) -> None:
        super().__init__(settings, audience=audience)
        self.batch_size = setting_int(settings, "batch_size", 1000, high=MAX_ROWS)
        self.channel = WebhookChannel({k: v for k, v in settings.items()
                                       if k != "batch_size"})

    def row(self, person: Person) -> Row | None:
        """The generic row (generic.py)."""
        return generic_row(person)

    def body(self, action: str, rows: Sequence[Row]) -> dict[str, Any]:
        """The JSON body of a batch."""
        return {"audience": self.audience, "action": action, "members": [dict(r) for r in rows]}

    def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
        """One signed POST."""
        return [Request("POST", self.channel.url, self.body(action, rows))]

    def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
        """POST the batch through the webhook channel (signature, SSRF guard, redirects)."""
        body = self.body(action, rows)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
        message = OutgoingMessage(outbox_id=0, recipient="",
                                  idempotency_key=f"audience:{self.audience}:{digest}",
                                  content={"payload": body})
        try:
            self.channel.send(message)
        except ChannelTransient as exc:
            raise TransientError(str(exc), retry_after=exc.retry_after) from None
        except ChannelPermanent as exc:
            raise PermanentError(str(exc)) from None
        return BatchResult()

    def close(self) -> None:
        """Close pooled connections."""
        self.channel.close()
