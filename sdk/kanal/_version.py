"""The SDK's version, sent as `context.library.version` with every event."""

from __future__ import annotations

__version__ = "0.1.0"
