"""Messages: render them, queue them, deliver them (the outbox and its dispatcher).

    errors.py       MessageError and its subclasses
    renderer.py     sandboxed Jinja, language choice, template context
    languages.py    language tags: BCP 47 matching of a person's language to a variant
    definition.py   one message definition, validated (every problem, with its line)
    catalog.py      the message files of a directory, reloaded when they change
    eligibility.py  recipient, consent, subscription and suppression checks
    enqueuing.py    the enqueue API journeys call (one outbox row per key)
    hooks.py        before_send hooks (email tracking rewrites links here)
    delivery.py     delivery outcomes as events in the log
    dispatcher.py   the worker that claims, renders, sends and records
    callbacks.py    provider delivery callbacks (Twilio status) as events

docs/messages.md has the file format, the outbox states and the
commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from ..store.outbox import FINAL_STATES, STATES, OutboxRow
    from .catalog import Catalog, load_directory, messages_dir
    from .definition import Message, parse_message
    from .dispatcher import Dispatcher, Settings, TokenBucket, build_dispatcher, provider_key
    from .eligibility import Policy
    from .enqueuing import PREFERRED, enqueue
    from .errors import DefinitionError, MessageError, RenderError
    from .hooks import BeforeSend, before_send, register_before_send
    from .languages import choose_language
    from .renderer import Rendered

_lazy = lazy_exports(__name__, {
    "FINAL_STATES": "..store.outbox",
    "STATES": "..store.outbox",
    "OutboxRow": "..store.outbox",
    "Catalog": ".catalog",
    "load_directory": ".catalog",
    "messages_dir": ".catalog",
    "Message": ".definition",
    "parse_message": ".definition",
    "Dispatcher": ".dispatcher",
    "Settings": ".dispatcher",
    "TokenBucket": ".dispatcher",
    "build_dispatcher": ".dispatcher",
    "provider_key": ".dispatcher",
    "Policy": ".eligibility",
    "PREFERRED": ".enqueuing",
    "enqueue": ".enqueuing",
    "DefinitionError": ".errors",
    "MessageError": ".errors",
    "RenderError": ".errors",
    "BeforeSend": ".hooks",
    "before_send": ".hooks",
    "register_before_send": ".hooks",
    "choose_language": ".languages",
    "Rendered": ".renderer",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "BeforeSend",
    "Catalog",
    "DefinitionError",
    "Dispatcher",
    "FINAL_STATES",
    "Message",
    "MessageError",
    "OutboxRow",
    "PREFERRED",
    "Policy",
    "RenderError",
    "Rendered",
    "STATES",
    "Settings",
    "TokenBucket",
    "before_send",
    "build_dispatcher",
    "choose_language",
    "enqueue",
    "load_directory",
    "messages_dir",
    "parse_message",
    "provider_key",
    "register_before_send",
]
