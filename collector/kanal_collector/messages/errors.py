"""The messages package's exceptions.

    KanalError
    └── MessageError          a message can't be loaded, rendered or enqueued
        ├── DefinitionError   a message file is invalid (bad YAML, template, field)
        ├── RenderError       a valid message failed to render for one person
        └── SkipSend          a template said at send time: don't send this one
"""

from __future__ import annotations

from ..errors import KanalError
from ..yamlfile import Problem


class MessageError(KanalError):
    """A message can't be loaded, rendered or enqueued."""


class DefinitionError(MessageError):
    """A message definition is invalid; `problems` names the file, line and field of
    each problem."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class RenderError(MessageError):
    """A message failed to render for one person (a template raised)."""


class SkipSend(MessageError):
    """A template decided at send time that the message must not go out (its product
    sold out, say); the outbox row is skipped with this reason."""
