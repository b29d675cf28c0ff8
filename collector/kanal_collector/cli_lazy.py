"""A click group whose commands are imported when they are used.

`kanal report journey welcome` should not import the dashboard, the audiences' platforms
or the SMS callbacks: each part's commands live in a module of their own (cli_*.py) whose
imports are what that part needs, and the group imports a module only when one of its
commands is run or its help is shown. `kanal --help` lists every command (and so imports
them all).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click


class LazyGroup(click.Group):
    """A group with commands given as `{name: "module:attribute"}`, imported on use."""

    def __init__(self, *args: object, lazy: Mapping[str, str] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, the lazy ones included (none is imported)."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, imported first when it is a lazy one."""
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> click.Command:
        """Import one lazy command (TypeError when the name points at no command)."""
        module, _, attribute = self.lazy[name].partition(":")
        command = getattr(importlib.import_module(module, __package__), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[name]} is not a click command")
        return command
