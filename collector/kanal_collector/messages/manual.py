"""What an operator does to messages by hand, shared by the CLI (`kanal messages
preview`, `kanal outbox retry`) and the dashboard's Messages page:

    retry(conn, outbox_id, now_ms, failed=False)   queue an in-doubt (or failed) row again
    preview(conn, config, definition, profile_id, …) -> Preview   render as it would be sent
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..products.settings import ProductSettings
from ..products.templates import ProductFunctions
from ..store import outbox as store
from ..store.connection import Connection
from ..store.db import transaction
from .definition import Message
from .eligibility import BUILTIN_CHANNELS, ChannelInfo, Policy, check, load_person
from .errors import MessageError


class RetryRefused(MessageError):
    """The outbox row doesn't exist or is in a state that can't be queued again."""


def retry(conn: Connection, outbox_id: int, now_ms: int, *, failed: bool = False) -> None:
    """Queue an in-doubt row again (and a failed one with `failed`), due at once with a
    fresh attempt count; the operator has checked with the provider that it wasn't sent."""
    states = ("in_doubt", "failed") if failed else ("in_doubt",)
    with transaction(conn):
        done = store.requeue(conn, outbox_id, now=now_ms, states=states)
    if not done:
        row = store.get(conn, outbox_id)
        what = "does not exist" if row is None else f"is {row.state}"
        raise RetryRefused(f"outbox row {outbox_id} {what}; only "
                           f"{' or '.join(states)} rows can be queued again")


DEFAULT_KINDS = ("email", "sms", "push", "webhook", "console")


@dataclass(frozen=True)
class Preview:
    """A message rendered for one person, and whether it would be sent."""

    message: str
    message_kind: str
    profile_id: int
    channel: str
    channel_kind: str
    recipient: str | None
    language: str
    refusal: str | None
    """Why it would not be sent (None: it would)."""
    content: dict[str, Any]

    def fields(self) -> list[tuple[str, str]]:
        """(field, text) of the rendered content; structured fields as JSON."""
        return [(name, value if isinstance(value, str)
                 else json.dumps(value, ensure_ascii=False, indent=2))
                for name, value in self.content.items()]


def preview(conn: Connection, config: Config, definition: Message,
            profile_id: int, *, channel: str | None = None, language: str | None = None,
            data: dict[str, Any] | None = None, now_ms: int) -> Preview:
    """Render `definition` for a profile as it would be sent on `channel` (default: the
    message's first kind) in `language` (default: the person's); nothing is recorded."""
    person = load_person(conn, profile_id)
    if person is None:
        raise MessageError(f"no profile {profile_id}")
    data = data or {}
    name = channel or next(k for k in DEFAULT_KINDS if k in definition.kinds)
    kind, identity = BUILTIN_CHANNELS.get(name, (name, None))
    info = ChannelInfo(name, kind, identity)
    with transaction(conn):  # the suppression check may create its key
        recipient, why = check(conn, person, info, kind=definition.kind,
                               topic=definition.topic, policy=Policy.from_config(config))
    functions = ProductFunctions(  # no outbox row: nothing is recorded
        conn, ProductSettings.from_config(config), profile_id=person.profile_id,
        traits=person.traits, data=data, now_ms=now_ms)
    rendered = definition.render(
        kind, traits=person.traits, profile=person.template_profile(), data=data,
        language=language or person.computed.get("language"), channel=name,
        functions=functions.globals())
    return Preview(definition.name, definition.kind, person.profile_id, name, kind,
                   recipient, rendered.language, why, dict(rendered.content))
