"""What a journey file names outside itself: messages, channels, other journeys,
groups and ads audiences. Each reference is checked where it is written (FILE:LINE),
when what it may name is known (References); unknown parts are not checked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ..audiences.settings import audience_names
from ..config import Config
from .checker import Checker, Path_, References
from .model import Journey

PREFERRED = "preferred"
"""A send step's channel meaning the person's preferred channel (not a channel name)."""


def check_references(c: Checker, journey: Journey) -> None:
    """Note every message, channel, journey or group the journey names that isn't there."""
    refs = c.references
    for step in journey.sends():
        path: Path_ = c.ids[step.id]
        message = step.spec.get("message")
        kinds = None
        if refs.messages is not None:
            if message not in refs.messages:
                c.error((*path, "send"), f"no message named {message!r}")
            else:
                kinds = set(refs.messages[str(message)])
        if refs.channels is None:
            continue
        named: list[tuple[str, int | None, object]] = [
            ("channel", None, step.spec.get("channel"))]
        named += [("fallbacks", i, f) for i, f in enumerate(step.spec.get("fallbacks", []))]
        for key, index, name in named:
            where: Path_ = (*path, key) if index is None else (*path, key, index)
            if name == PREFERRED or not isinstance(name, str):
                continue
            kind = refs.channels.get(name)
            if kind is None:
                known = ", ".join(sorted(refs.channels)) or "none"
                c.error(where, f"no channel named {name!r} (channels: {known})")
            elif kinds and kind not in kinds and kind != "console":
                c.error(where, f"message {message!r} has no {kind} content, which channel "
                        f"{name!r} sends")
    if refs.audiences is not None:
        _check_audiences(c, journey, refs.audiences)
    if refs.journeys is not None:
        for i, name in enumerate(journey.exclude_journeys):
            if name == journey.name:
                c.error(("exclude", "journeys", i), "a journey can't exclude itself (its "
                        "own runs follow its entry rules)")
            elif name not in refs.journeys:
                c.error(("exclude", "journeys", i), f"no journey named {name!r}")
    if refs.groups is not None:
        for i, name in enumerate(journey.exclude_groups):
            if name not in refs.groups:
                c.error(("exclude", "groups", i), f"no journey is in group {name!r}")


def _check_audiences(c: Checker, journey: Journey, known: Collection[str]) -> None:
    """Every `audience` step names an `[audiences.NAME]` of kanal.toml."""
    names = ", ".join(sorted(known)) or "none"
    for step in journey.steps.values():
        name = step.spec.get("audience")
        if step.kind != "audience" or not isinstance(name, str) or name in known:
            continue
        c.error((*c.ids[step.id], "audience", str(step.spec["action"])),
                f"no audience named {name!r} (audiences: {names}; add "
                f"[audiences.{name}] to kanal.toml)")


def references_for(config: Config,
                   messages: Mapping[str, Collection[str]] | None) -> References:
    """What journey files may name under this config: its channels and ads audiences,
    and `messages` (message name → channel kinds with content) when the message files
    are known."""
    # The channel plugins (SMTP, DKIM, DNS, the plugin manager) only when a journey is
    # checked against a config: `kanal report` reads journey files without them.
    from ..channels.plugins import configured_channel_kinds

    return References(messages=messages, channels=configured_channel_kinds(config),
                      audiences=audience_names(config))
