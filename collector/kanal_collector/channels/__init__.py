"""Channels: the plugin contract, the plugin manager and the built-in channels.

A third-party channel subclasses `Channel` and returns it from a `register_channels`
hook implementation (`@hookimpl`), exposed through an entry point in the group `kanal`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .base import (
        Channel,
        ChannelError,
        OutgoingMessage,
        PermanentError,
        RecipientGone,
        SendResult,
        TransientError,
    )
    from .hookspecs import hookimpl
    from .plugins import build_channels, channel_classes, get_plugin_manager, plugin_summary

_lazy = lazy_exports(__name__, {
    "Channel": ".base",
    "ChannelError": ".base",
    "OutgoingMessage": ".base",
    "PermanentError": ".base",
    "RecipientGone": ".base",
    "SendResult": ".base",
    "TransientError": ".base",
    "hookimpl": ".hookspecs",
    "build_channels": ".plugins",
    "channel_classes": ".plugins",
    "get_plugin_manager": ".plugins",
    "plugin_summary": ".plugins",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "Channel",
    "ChannelError",
    "OutgoingMessage",
    "PermanentError",
    "RecipientGone",
    "SendResult",
    "TransientError",
    "build_channels",
    "channel_classes",
    "get_plugin_manager",
    "hookimpl",
    "plugin_summary",
]
