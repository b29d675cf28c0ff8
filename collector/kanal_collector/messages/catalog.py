"""The message catalog: the message files of a directory, reloaded when they change.

One YAML file per message in `messages/` (definition.py has the format and its checks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..filestamp import Stamp, files_stamp
from ..yamlfile import Problem
from .definition import MESSAGE_KINDS, Message, load_file, parse_message
from .errors import DefinitionError, MessageError

__all__ = ["MESSAGE_KINDS", "Catalog", "Message", "load_directory", "load_file",
           "message_files", "messages_dir", "parse_message"]

log = logging.getLogger("kanal.messages")


def message_files(directory: Path) -> list[Path]:
    """The message files of a directory (*.yaml, *.yml, also in subfolders), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def load_directory(directory: Path) -> dict[str, Message]:
    """Every message of a directory; DefinitionError listing every problem of every file,
    each as FILE:LINE: FIELD: WHAT."""
    messages: dict[str, Message] = {}
    problems: list[Problem] = []
    for path in message_files(directory):
        try:
            message = load_file(path)
        except DefinitionError as exc:
            problems.extend(exc.problems or [Problem(str(path), None, "", str(exc))])
            continue
        if message.name in messages:
            problems.append(Problem(str(path), None, "name",
                                    f"message {message.name!r} is also defined in "
                                    f"{messages[message.name].source}"))
            continue
        messages[message.name] = message
    if problems:
        raise DefinitionError("\n".join(map(str, problems)), problems)
    return messages


def messages_dir(config: Config) -> Path:
    """Where message files live: $KANAL_MESSAGES_DIR, `[messages] messages_dir`, messages/."""
    env = os.environ.get("KANAL_MESSAGES_DIR")
    if env:
        return Path(env)
    value = config.section("messages").get("messages_dir")
    return Path(str(value)) if value else Path("messages")


@dataclass
class Catalog:
    """The messages the dispatcher and enqueue know, reloaded when their files change."""

    messages: dict[str, Message] = field(default_factory=dict)
    directory: Path | None = None
    _stamp: tuple[tuple[str, float, int], ...] = ()

    @classmethod
    def from_dicts(cls, definitions: Iterable[Mapping[str, Any]]) -> Catalog:
        """A catalog of definitions given as mappings (tests, embedding)."""
        messages: dict[str, Message] = {}
        for i, data in enumerate(definitions):
            message = parse_message(data, source=f"<definition {i}>")
            if message.name in messages:
                raise DefinitionError(f"message {message.name!r} is defined twice")
            messages[message.name] = message
        return cls(messages)

    @classmethod
    def from_directory(cls, directory: Path) -> Catalog:
        """The messages of a directory (empty when it does not exist)."""
        catalog = cls(directory=directory)
        catalog.messages = load_directory(directory)
        catalog._stamp = catalog._files_stamp()
        return catalog

    def get(self, name: str) -> Message:
        """The message called `name`; MessageError when there is none."""
        try:
            return self.messages[name]
        except KeyError:
            where = f" in {self.directory}" if self.directory else ""
            raise MessageError(f"no message named {name!r}{where}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.messages

    def refresh(self) -> bool:
        """Reload from the directory when its files changed; True when reloaded.

        A broken edit keeps the previous messages (and is logged): a typo in one file
        must not stop every send.
        """
        if self.directory is None:
            return False
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.messages = load_directory(self.directory)
        except DefinitionError as exc:
            log.error("message files not reloaded:\n%s", exc)
            return False
        return True

    def _files_stamp(self) -> Stamp:
        assert self.directory is not None
        return files_stamp(message_files(self.directory))
