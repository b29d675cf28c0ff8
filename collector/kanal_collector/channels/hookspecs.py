"""Kanal's pluggy hooks (project name "kanal"): one function per hook; hooks return lists.

A plugin is a module (or object) with functions marked `@hookimpl` whose names match the
specs below; third-party plugins are found through the entry-point group `kanal`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .base import Channel

hookspec = pluggy.HookspecMarker("kanal")
hookimpl = pluggy.HookimplMarker("kanal")


@hookspec
def register_channels() -> list[type[Channel]]:  # type: ignore[empty-body]
    """Return the Channel classes this plugin provides."""
