"""The built-in channels, registered through the same hook as third-party ones."""

from __future__ import annotations

from .base import Channel
from .console import ConsoleChannel
from .hookspecs import hookimpl
from .push import PushChannel
from .sms import SmsChannel
from .smtp import EmailChannel
from .webhook import WebhookChannel


@hookimpl
def register_channels() -> list[type[Channel]]:
    """email, sms, push, webhook and console."""
    return [ConsoleChannel, EmailChannel, PushChannel, SmsChannel, WebhookChannel]
