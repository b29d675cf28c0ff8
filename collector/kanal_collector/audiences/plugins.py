"""Destinations from the one plugin manager (channels/plugins.py): their classes, their
declared settings, and a built destination per `[audiences.NAME]` table.

    destination_classes()        {type: Destination class} from register_destinations
    destination_settings()       {type: [Key]} from register_settings (destinations.TYPE.*)
    check_audiences(config)      every problem of every [audiences.NAME] table at once
    build_destination(settings)  the configured Destination (secrets resolved)
    destination_summary(config)  what `kanal plugins` prints about destinations
"""

from __future__ import annotations

from typing import Any

import pluggy

from ..channels.checks import Check
from ..channels.plugins import _hook_results, _resolve, get_plugin_manager, plugin_classes
from ..config import Config
from ..config_keys import AUDIENCE_COMMON, Key, check_plugin_table
from ..errors import ConfigError
from .destination import Destination
from .settings import AudienceSettings, audience_settings


def _plugin_destinations(pm: pluggy.PluginManager) -> list[tuple[str, type[Destination]]]:
    return plugin_classes(pm, "register_destinations", Destination,
                          "row(), requests() and send()")


def destination_classes(pm: pluggy.PluginManager | None = None
                        ) -> dict[str, type[Destination]]:
    """Every registered destination class by type; two with one type is an error."""
    pm = pm or get_plugin_manager()
    classes: dict[str, type[Destination]] = {}
    owners: dict[str, str] = {}
    for plugin, cls in _plugin_destinations(pm):
        if cls.name in classes and classes[cls.name] is not cls:
            raise ConfigError(f"two plugins register a destination named {cls.name!r}: "
                              f"{owners[cls.name]!r} and {plugin!r}; uninstall one")
        classes[cls.name] = cls
        owners[cls.name] = plugin
    return classes


def destination_settings(pm: pluggy.PluginManager | None = None) -> dict[str, list[Key]]:
    """{destination type: its settings} from every plugin's register_settings (keys
    named destinations.TYPE.KEY; a type that declares none has unchecked tables)."""
    pm = pm or get_plugin_manager()
    out: dict[str, list[Key]] = {}
    for _plugin, result in _hook_results(pm, "register_settings"):
        for key in result if isinstance(result, list | tuple) else []:
            parts = key.path.split(".") if isinstance(key, Key) else []
            if len(parts) == 3 and parts[0] == "destinations":
                out.setdefault(parts[1], []).append(key)
    return out


def check_audiences(config: Config, pm: pluggy.PluginManager | None = None
                    ) -> dict[str, AudienceSettings]:
    """The audiences of kanal.toml, or ConfigError listing every problem of every table:
    common keys, unknown destination types, unknown keys and bad values of the
    destination's declared settings."""
    pm = pm or get_plugin_manager()
    audiences = audience_settings(config)
    classes = destination_classes(pm)
    declared = destination_settings(pm)
    problems: list[str] = []
    raw = config.section("audiences")
    for name, found in audiences.items():
        if found.destination not in classes:
            problems.append(f"audiences.{name}.destination: no destination type "
                            f"{found.destination!r} is installed (known: "
                            f"{', '.join(sorted(classes))}); see `kanal plugins`")
        elif found.destination in declared:
            problems += check_plugin_table("audiences", name, raw[name], found.destination,
                                           declared[found.destination], AUDIENCE_COMMON,
                                           "destination")
    if problems:
        raise ConfigError("\n".join(problems))
    return audiences


def build_destination(audience: AudienceSettings,
                      pm: pluggy.PluginManager | None = None) -> Destination:
    """The audience's Destination, `{ env = … }` secrets resolved; ConfigError naming the
    table when a setting is missing or wrong."""
    classes = destination_classes(pm)
    cls = classes.get(audience.destination)
    if cls is None:
        raise ConfigError(f"[audiences.{audience.name}]: no destination type "
                          f"{audience.destination!r} is installed (known: "
                          f"{', '.join(sorted(classes))})")
    settings = _resolve(dict(audience.table), f"[audiences.{audience.name}]")
    try:
        return cls(settings, audience=audience.name)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"[audiences.{audience.name}]: {exc}") from None


def destination_summary(config: Config | None = None,
                        pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Each destination type: its plugin, class, and the audiences configured with it."""
    pm = pm or get_plugin_manager()
    owners = {cls: plugin for plugin, cls in _plugin_destinations(pm)}
    tables = config.section("audiences") if config is not None else {}
    out = []
    for name, cls in sorted(destination_classes(pm).items()):
        used = sorted(str(n) for n, t in tables.items()
                      if isinstance(t, dict) and t.get("destination") == name)
        out.append({"name": name, "plugin": owners.get(cls),
                    "class": f"{cls.__module__}.{cls.__qualname__}",
                    "max_batch": cls.max_batch, "configured_as": used})
    return out


def check_destinations(config: Config, pm: pluggy.PluginManager | None = None
                       ) -> list[Check]:
    """One Check per `[audiences.NAME]` table: the tables' settings, then building each
    destination (secrets resolved; nothing is sent and nothing connects)."""
    try:
        audiences = check_audiences(config, pm)
    except ConfigError as exc:
        return [Check("audiences", "[audiences]", False, str(exc))]
    out: list[Check] = []
    for name, audience in audiences.items():
        try:
            build_destination(audience, pm).close()
        except ConfigError as exc:
            out.append(Check("destination", name, False, str(exc)))
            continue
        out.append(Check("destination", name, True, audience.destination))
    return out
