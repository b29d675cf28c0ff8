"""Kanal's collector: ingest, storage, the processor and everything behind `kanal serve`.

The public names are imported lazily, so that `kanal` in a base (SDK-only) install can
say which extra to install instead of failing on a missing Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .clock import Clock, FakeClock, SystemClock
    from .config import Config, load_config
    from .errors import ConfigError, HTTPError, KanalError, StorageError

__all__ = [
    "Clock",
    "Config",
    "ConfigError",
    "FakeClock",
    "HTTPError",
    "KanalError",
    "StorageError",
    "SystemClock",
    "create_app",
    "load_config",
]

_WHERE = {
    "create_app": "app", "Clock": "clock", "FakeClock": "clock", "SystemClock": "clock",
    "Config": "config", "load_config": "config", "ConfigError": "errors",
    "HTTPError": "errors", "KanalError": "errors", "StorageError": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
