"""Validate the journey files of a config, as `kanal journeys validate` and the
dashboard's journey pages do: every file of the journeys directory (or the files
given), checked against the config's channels and audiences and the message files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import Config
from ..errors import KanalError
from ..messages.catalog import load_directory as load_messages
from ..messages.catalog import messages_dir
from ..yamlfile import Problem
from .definition import journey_files, load_files
from .model import Journey
from .references import references_for


def message_kinds(directory: Path) -> dict[str, frozenset[str]] | None:
    """Message name → the channel kinds it has content for (None: no messages dir);
    KanalError when the message files are wrong."""
    if not directory.is_dir():
        return None
    try:
        return {name: m.kinds for name, m in load_messages(directory).items()}
    except KanalError as exc:
        raise KanalError(f"message files: {exc}") from None


def validate(config: Config, paths: Sequence[Path] = (), *,
             messages_path: Path | None = None) -> tuple[dict[str, Journey], list[Problem]]:
    """The valid journeys among `paths` (default: the journeys directory) and the
    problems of the others; KanalError when the config or message files can't be read."""
    paths = list(paths) or journey_files(config.journeys_dir)
    kinds = message_kinds(messages_path or messages_dir(config))
    refs = references_for(config, kinds)
    return load_files(paths, refs, context=journey_files(config.journeys_dir))
