"""`kanal plugins --check` and the dashboard's Settings page check the same things here:
every `[channels.NAME]` table (its settings, then building the channel), every
`[audiences.NAME]` destination, and whatever each plugin's `check_setup(config)` hook
returns. Nothing is sent and nothing connects.

    run_checks(config) -> list[Check]
"""

from __future__ import annotations

import pluggy

from .audiences.plugins import check_destinations
from .channels.checks import Check
from .channels.plugins import check_channels, get_plugin_manager
from .config import Config
from .errors import ConfigError

__all__ = ["Check", "run_checks"]


def run_checks(config: Config, pm: pluggy.PluginManager | None = None) -> list[Check]:
    """Every check's result: channels, audience destinations, then plugins' own checks
    (a plugin whose hook raises or returns something else fails its own check)."""
    pm = pm or get_plugin_manager()
    try:
        out = check_channels(config, pm)
    except ConfigError as exc:  # [channels] isn't even a set of tables
        out = [Check("channels", "[channels]", False, str(exc))]
    out += check_destinations(config, pm)
    for impl in reversed(pm.hook.check_setup.get_hookimpls()):
        try:
            found = impl.function(config=config)
        except Exception as exc:
            out.append(Check("plugin", impl.plugin_name, False,
                             f"check_setup failed: {type(exc).__name__}: {exc}"))
            continue
        if not isinstance(found, list | tuple) or not all(isinstance(c, Check)
                                                          for c in found):
            out.append(Check("plugin", impl.plugin_name, False,
                             "check_setup must return a list of "
                             "kanal_collector.channels.checks.Check"))
            continue
        out += found
    return out
