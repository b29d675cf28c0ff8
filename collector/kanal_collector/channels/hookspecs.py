"""Kanal's pluggy hooks (project name "kanal"): one function per hook; hooks return lists.

A plugin is a module (or object) with functions marked `@hookimpl` whose names match the
specs below; third-party plugins are found through the entry-point group `kanal`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ..audiences.destination import Destination
    from ..config import Config
    from ..config_keys import Key
    from .base import Channel
    from .checks import Check

hookspec = pluggy.HookspecMarker("kanal")
hookimpl = pluggy.HookimplMarker("kanal")


@hookspec
def register_channels() -> list[type[Channel]]:  # type: ignore[empty-body]
    """Return the Channel classes this plugin provides."""


@hookspec
def register_settings() -> list[Key]:  # type: ignore[empty-body]
    """Return the settings (Key, path channels.TYPE.NAME or destinations.TYPE.NAME)."""


@hookspec
def register_destinations() -> list[type[Destination]]:  # type: ignore[empty-body]
    """Return the Destination classes (ads audiences) this plugin provides."""


@hookspec
def check_setup(config: Config) -> list[Check]:  # type: ignore[empty-body]
    """Return Check results for what this plugin sets up in `config` (nothing is sent)."""
