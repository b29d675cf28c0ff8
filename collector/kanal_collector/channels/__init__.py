"""Channels: the plugin contract, the plugin manager and the built-in channels.

A third-party channel subclasses `Channel` and returns it from a `register_channels`
hook implementation (`@hookimpl`), exposed through an entry point in the group `kanal`.
"""

from __future__ import annotations

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
