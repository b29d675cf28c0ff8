"""`before_send`: functions that change a rendered message just before it is sent.

Email tracking (link rewriting, the open pixel, List-Unsubscribe headers) plugs in here.
A hook is called as

    hook(conn, row, content) -> content

- `conn` is in a write transaction (BEGIN IMMEDIATE) that commits *before* the
  provider is called: what a hook writes (e.g. the links it rewrote, keyed by
  `row.id`) is stored even if the send then fails, and a retry calls the hook again,
  so write idempotently (INSERT OR REPLACE by outbox id).
- `row` is the claimed `OutboxRow` (id, profile_id, message, kind, topic, channel,
  journey, step, recipient, language, attempts …).
- `content` is the rendered content for the channel's kind (a new dict each call; for
  email: subject, html, text). Return the content to send (the same dict, changed, is
  fine). A key `headers` (a mapping of header name → value) is taken out of the
  returned content and handed to the channel as `OutgoingMessage.headers`.

A hook that raises fails the row permanently (state `failed`, the error as reason):
sending without the unsubscribe link a hook was meant to add is worse than not sending.

Register a hook for every dispatcher built by `kanal serve` with `register_before_send`
(or pass `before_send=[…]` to a `Dispatcher` directly, as tests do).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..store.connection import Connection
from ..store.outbox import OutboxRow

BeforeSend = Callable[[Connection, OutboxRow, dict[str, Any]], dict[str, Any]]

before_send: list[BeforeSend] = []
"""The hooks `build_dispatcher` hands to the dispatcher, in order."""


def register_before_send(hook: BeforeSend) -> BeforeSend:
    """Add a hook for dispatchers built from now on (usable as a decorator); idempotent."""
    if hook not in before_send:
        before_send.append(hook)
    return hook


@dataclass(frozen=True)
class RenderTarget:
    """Whom and what a message is rendered for, as template functions need it."""

    profile_id: int | None
    traits: Mapping[str, Any]
    data: Mapping[str, Any]
    now_ms: int
    outbox_id: int | None = None
    """None when nothing is being sent (a preview): functions then record nothing."""
    message: str | None = None
    journey: str | None = None


class TemplateFunctions(Protocol):
    """The template functions of one rendering (products/templates.py has some)."""

    def globals(self) -> dict[str, Any]:
        """{name: function} for the template context."""
        ...

    def record(self) -> None:
        """Store what the rendering used, in the dispatcher's transaction."""
        ...


TemplateGlobals = Callable[[Connection, RenderTarget], TemplateFunctions]
"""Makes the template functions of one rendering (the dispatcher's `template_globals`)."""
