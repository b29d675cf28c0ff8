"""The campaign files of a directory (`[onsite] dir`), checked and reloaded.

`load_file` reads one (every problem as FILE:LINE: FIELD: WHAT), `load_directory` a
folder, `check_references` the messages and segments they name, and `Campaigns` keeps
them current for the pull, reloading when the files change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import yamlfile
from ..config import Config
from ..filestamp import Stamp, files_stamp
from ..yamlfile import FieldPath, Lines, Problem, where
from .campaigns import Campaign, CampaignError, parse_campaign

log = logging.getLogger("kanal.onsite")


def load_file(path: Path) -> Campaign:
    """Read and validate one campaign file; CampaignError lists FILE:LINE: FIELD: WHAT."""
    document = yamlfile.read_file(path)
    if document.data is None and document.problems:
        raise CampaignError("\n".join(map(str, document.problems)), document.problems)
    found: list[Problem] = []
    campaign: Campaign | None = None
    try:
        campaign = parse_campaign(document.data, source=str(path), name=path.stem,
                                  lines=document.lines)
    except CampaignError as exc:
        found = exc.problems
    problems = yamlfile.combine(document.problems, found)
    if problems or campaign is None:
        raise CampaignError("\n".join(map(str, problems)), problems)
    return campaign


def campaign_files(directory: Path) -> list[Path]:
    """The campaign files of a directory (*.yaml, *.yml), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def load_directory(directory: Path) -> dict[str, Campaign]:
    """Every campaign of a directory; CampaignError lists every problem of every file."""
    found: dict[str, Campaign] = {}
    problems: list[Problem] = []
    for path in campaign_files(directory):
        try:
            campaign = load_file(path)
        except CampaignError as exc:
            problems.extend(exc.problems or [Problem(str(path), None, "", str(exc))])
            continue
        if campaign.name in found:
            problems.append(Problem(str(path), None, "name", f"campaign {campaign.name!r} "
                                    f"is also defined in {found[campaign.name].source}"))
            continue
        found[campaign.name] = campaign
    if problems:
        raise CampaignError("\n".join(map(str, problems)), problems)
    return found


def _lines(source: str) -> Lines | None:
    return yamlfile.read_file(Path(source), strict=False).lines


def check_references(campaigns: Sequence[Campaign], *, messages: Mapping[str, Any],
                     segments: set[str] | None) -> list[Problem]:
    """Campaigns naming a message that doesn't exist (or has no onsite content), or a
    segment that isn't defined (when the database's segments are known); each problem
    with the line of the file that names it."""
    return [p for c in campaigns for p in _references(c, messages, segments)]


def _references(campaign: Campaign, messages: Mapping[str, Any],
                segments: set[str] | None) -> list[Problem]:
    lines = _lines(campaign.source)
    problems: list[Problem] = []

    def error(path: FieldPath, message: str) -> None:
        line = lines.line(path) if lines is not None else None
        problems.append(Problem(campaign.source, line, where(path), message))

    named = [(("message",), campaign.message)] if len(campaign.arms) == 1 and \
        campaign.arms[0].name == "main" else \
        [(("arms", i, "message"), a.message) for i, a in enumerate(campaign.arms)]
    for path, message in named:
        found = messages.get(message)
        if found is None:
            error(path, f"no message {message!r} in the messages directory")
        elif not found.has_content("onsite"):
            error(path, f"message {message!r} has no onsite content")
    for i, segment in enumerate(campaign.segments if segments is not None else ()):
        if segment not in segments:  # type: ignore[operator]
            error(("segments", i), f"no segment {segment!r} (see kanal segments list)")
    return problems


def onsite_dir(config: Config) -> Path:
    """Where campaign files live: $KANAL_ONSITE_DIR, `[onsite] dir`, onsite/."""
    env = os.environ.get("KANAL_ONSITE_DIR")
    if env:
        return Path(env)
    value = config.section("onsite").get("dir")
    return Path(str(value)) if value else Path("onsite")


@dataclass
class Campaigns:
    """The campaigns of a directory, reloaded when their files change (a broken edit
    keeps the previous ones and is logged)."""

    directory: Path | None = None
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    _stamp: Stamp = ()

    def refresh(self) -> bool:
        """Reload when the files changed; True when reloaded."""
        if self.directory is None:
            return False
        stamp = files_stamp(campaign_files(self.directory))
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.campaigns = load_directory(self.directory)
        except CampaignError as exc:
            log.error("on-site campaigns not reloaded:\n%s", exc)
            return False
        return True

    def active(self) -> list[Campaign]:
        """The enabled campaigns, highest priority first."""
        return sorted((c for c in self.campaigns.values() if c.enabled),
                      key=lambda c: (-c.priority, c.name))
