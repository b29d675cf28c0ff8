"""The one plugin manager: built-in channels and entry-point plugins (group `kanal`).

    get_plugin_manager()   the manager, built on first use
    channel_classes()      {name: Channel class} from every plugin's register_channels
    channel_settings()     {type: settings} from every plugin's register_settings
    build_channels(config) {name: Channel} for each `[channels.NAME]` table of kanal.toml
    plugin_summary(config) what `kanal plugins` prints
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from ..audiences import builtin as destinations_builtin
from ..config import Config, resolve_secret
from ..config_keys import Key, check_channel_table
from ..errors import ConfigError
from . import builtin, hookspecs
from .base import Channel
from .checks import Check
from .tables import PULL_CHANNELS, configured_channels

PROJECT = "kanal"
ENTRY_POINT_GROUP = "kanal"
BUILTIN_PLUGIN = "kanal.builtin"
BUILTIN_DESTINATIONS = "kanal.destinations"
_KINDS = {"email", "sms", "push", "webhook", "console"}

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None

log = logging.getLogger("kanal.channels")


def new_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and (unless told not to) entry-point plugins."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_PLUGIN)
    pm.register(destinations_builtin, name=BUILTIN_DESTINATIONS)  # ads audiences
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise ConfigError(f"a plugin in the entry-point group {ENTRY_POINT_GROUP!r} "
                              f"failed to load: {type(exc).__name__}: {exc}") from exc
    try:
        pm.check_pending()  # a hook name with a typo would otherwise be ignored silently
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin {exc.plugin!r}: {exc}") from None
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager (built once; `reset_plugin_manager` rebuilds it)."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = new_plugin_manager()
        return _manager


def reset_plugin_manager() -> None:
    """Forget the manager, so the next call loads plugins again (tests, reloads)."""
    global _manager
    with _lock:
        _manager = None


def _hook_results(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, Any]]:
    """(plugin name, what it returned) for each plugin implementing `hook`, in the order
    they were registered; ConfigError naming the plugin whose implementation raised."""
    out = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        try:
            out.append((impl.plugin_name, impl.function()))
        except Exception as exc:
            raise ConfigError(f"plugin {impl.plugin_name!r}: {hook} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    return out


def plugin_classes(pm: pluggy.PluginManager, hook: str, base: type[Any],
                   needs: str) -> list[tuple[str, type[Any]]]:
    """(plugin name, class) for every class every plugin returns from `hook` (a
    register_… hook): each a subclass of `base` with an identifier-like `name`, and not
    abstract (`needs` names the methods it must define); ConfigError naming the plugin."""
    what = base.__name__
    out: list[tuple[str, type[Any]]] = []
    for plugin, result in _hook_results(pm, hook):
        if not isinstance(result, list | tuple):
            raise ConfigError(f"plugin {plugin!r}: {hook} must return a list "
                              f"of {what} classes, not {type(result).__name__}")
        for cls in result:
            if not (inspect.isclass(cls) and issubclass(cls, base)):
                raise ConfigError(f"plugin {plugin!r}: {cls!r} is not a {what} subclass")
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"plugin {plugin!r}: {cls.__qualname__}.name must be an "
                                  f"identifier-like string, not {name!r}")
            if inspect.isabstract(cls):
                raise ConfigError(f"plugin {plugin!r}: {cls.__qualname__} is abstract "
                                  f"(does it define {needs}?)")
            out.append((plugin, cls))
    return out


def _plugin_channels(pm: pluggy.PluginManager) -> list[tuple[str, type[Channel]]]:
    """(plugin name, class) for every channel every plugin registers, checked."""
    out = plugin_classes(pm, "register_channels", Channel, "send()")
    for plugin, cls in out:
        if getattr(cls, "kind", None) not in _KINDS:
            raise ConfigError(f"plugin {plugin!r}: {cls.__qualname__}.kind must be one "
                              f"of {', '.join(sorted(_KINDS))}")
    return out


def channel_classes(pm: pluggy.PluginManager | None = None) -> dict[str, type[Channel]]:
    """Every registered channel class by name; two classes with one name is an error."""
    pm = pm or get_plugin_manager()
    classes: dict[str, type[Channel]] = {}
    owners: dict[str, str] = {}
    for plugin, cls in _plugin_channels(pm):
        if cls.name in classes and classes[cls.name] is not cls:
            other = classes[cls.name]
            raise ConfigError(
                f"two plugins register a channel named {cls.name!r}: "
                f"{other.__module__}.{other.__qualname__} (plugin {owners[cls.name]!r}) and "
                f"{cls.__module__}.{cls.__qualname__} (plugin {plugin!r}); uninstall one")
        classes[cls.name] = cls
        owners[cls.name] = plugin
    return classes


def _resolve(value: Any, where: str) -> Any:
    """Resolve `{ env = "NAME" }` anywhere in a settings value."""
    try:
        value = resolve_secret(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if isinstance(value, Mapping):
        return {k: _resolve(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def configured_channel_kinds(config: Config) -> dict[str, str]:
    """{name: kind} of the channels `kanal serve` would build (`[channels.NAME]` tables
    that are enabled and of an installed type), or the built-in channels when the config
    has no channel tables. Nothing is built or connected."""
    tables = configured_channels(config)
    out = {name: kind for name, (kind, _) in PULL_CHANNELS.items()}
    if not tables:
        return {**out, **{cls.name: cls.kind for cls in builtin.register_channels()}}
    classes = channel_classes()
    for name, table in tables.items():
        cls = classes.get(str(table.get("type", name)))
        if table.get("enabled", True) is not False and cls is not None:
            out[name] = str(cls.kind)
    return out


def channel_settings(pm: pluggy.PluginManager | None = None) -> dict[str, list[Key]]:
    """{channel type: its settings} from every plugin's register_settings (a type whose
    plugin declares none is absent: its tables can't be checked)."""
    pm = pm or get_plugin_manager()
    out: dict[str, list[Key]] = {}
    for plugin, result in _hook_results(pm, "register_settings"):
        if not isinstance(result, list | tuple) or not all(isinstance(k, Key)
                                                           for k in result):
            raise ConfigError(f"plugin {plugin!r}: register_settings must return a list "
                              "of kanal_collector.config_keys.Key")
        for key in result:
            parts = key.path.split(".")
            if len(parts) != 3 or parts[0] not in ("channels", "destinations"):
                raise ConfigError(f"plugin {plugin!r}: setting {key.path!r} must be "
                                  "named channels.TYPE.NAME or destinations.TYPE.NAME")
            if parts[0] == "channels":  # destinations': audiences/plugins.py
                out.setdefault(parts[1], []).append(key)
    return out


def check_channel_tables(config: Config, pm: pluggy.PluginManager | None = None) -> None:
    """ConfigError listing every unknown key and bad value of the `[channels.NAME]`
    tables whose channel type declares its settings."""
    declared = channel_settings(pm)
    problems: list[str] = []
    for name, table in configured_channels(config).items():
        type_name = str(table.get("type", name))
        if type_name in declared:
            problems += check_channel_table(name, table, type_name, declared[type_name])
    if problems:
        raise ConfigError("\n".join(problems))


def build_channels(config: Config, pm: pluggy.PluginManager | None = None
                   ) -> dict[str, Channel]:
    """One Channel per `[channels.NAME]` table (skipping `enabled = false` ones).

    `type = "email"` makes another instance of a registered channel under NAME (e.g. a
    transactional and a marketing SMTP account); without it NAME is the channel's type.
    Secrets written as `{ env = "NAME" }` are resolved here. Errors name the table.
    """
    classes = channel_classes(pm)
    check_channel_tables(config, pm)
    channels: dict[str, Channel] = {}
    try:
        for name, table in configured_channels(config).items():
            if table.get("enabled", True) is not False:
                channels[name] = build_channel(name, table, classes)
    except BaseException:
        for channel in channels.values():
            channel.close()
        raise
    return channels


def build_channel(name: str, table: Mapping[str, Any],
                  classes: Mapping[str, type[Channel]]) -> Channel:
    """The Channel of one `[channels.NAME]` table (secrets resolved); ConfigError naming
    the table when its type isn't installed or a setting is wrong."""
    type_name = str(table.get("type", name))
    if type_name not in classes:
        raise ConfigError(
            f"[channels.{name}]: no channel type {type_name!r} is installed "
            f"(known: {', '.join(sorted(classes))}); see `kanal plugins`")
    cls = classes[type_name]
    settings = {k: v for k, v in table.items() if k not in {"type", "enabled"}}
    settings = _resolve(settings, f"[channels.{name}]")
    try:
        extra = cls.configured(name, settings)
        if name != cls.name or extra:
            # The instance answers to its configured name (dispatcher, logs, events),
            # and takes what its settings make of it (a console channel standing in
            # for sms renders and addresses an SMS).
            cls = type(cls.__name__, (cls,), {"name": name, **extra,
                                              "__module__": cls.__module__})
        return cls(settings)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"[channels.{name}]: {exc}") from None


def check_channels(config: Config, pm: pluggy.PluginManager | None = None) -> list[Check]:
    """One Check per `[channels.NAME]` table: its settings, then building it (secrets
    resolved; nothing is sent and nothing connects)."""
    classes = channel_classes(pm)
    declared = channel_settings(pm)
    out: list[Check] = []
    for name, table in configured_channels(config).items():
        type_name = str(table.get("type", name))
        if table.get("enabled", True) is False:
            out.append(Check("channel", name, True, f"{type_name}, disabled"))
            continue
        problems = (check_channel_table(name, table, type_name, declared[type_name])
                    if type_name in declared else [])
        if problems:
            out.append(Check("channel", name, False, "\n".join(problems)))
            continue
        try:
            build_channel(name, table, classes).close()
        except ConfigError as exc:
            out.append(Check("channel", name, False, str(exc)))
            continue
        out.append(Check("channel", name, True, f"{type_name}, kind {classes[type_name].kind}"))
    return out


def close_channels(channels: Iterable[Channel]) -> None:
    """Close every channel; one that fails to close is logged, the others still close."""
    for channel in channels:
        try:
            channel.close()
        except Exception:
            log.exception("closing channel %s failed", channel.name)


def plugin_summary(config: Config | None = None,
                   pm: pluggy.PluginManager | None = None) -> dict[str, Any]:
    """Loaded plugins (with their distribution and version), channels, configured names."""
    pm = pm or get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    plugins = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        plugins.append({
            "name": name,
            "builtin": name in (BUILTIN_PLUGIN, BUILTIN_DESTINATIONS),
            "distribution": dist.project_name if dist is not None else None,
            "version": dist.version if dist is not None else None,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
        })
    owners = {cls: plugin for plugin, cls in _plugin_channels(pm)}
    classes = channel_classes(pm)
    tables = configured_channels(config) if config is not None else {}
    channels = []
    for name, cls in sorted(classes.items()):
        configured = sorted(n for n, t in tables.items() if str(t.get("type", n)) == name)
        channels.append({"name": name, "kind": cls.kind, "plugin": owners.get(cls),
                         "class": f"{cls.__module__}.{cls.__qualname__}",
                         "recipient": cls.recipient_identity, "configured_as": configured})
    unknown = sorted(n for n, t in tables.items() if str(t.get("type", n)) not in classes)
    return {"plugins": plugins, "channels": channels, "unknown_configured": unknown}
