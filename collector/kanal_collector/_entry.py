"""The `kanal` command's entry point; it imports nothing of the server until needed,
so a base (SDK-only) install says what to install instead of failing obscurely."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI, or explain that `kanal[server]` is needed."""
    try:
        from .cli import cli
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dependency"
        sys.stderr.write(
            f"The kanal command is the collector and needs its dependencies ({missing} "
            "is missing).\nInstall them with:  pip install 'kanal[server]'\n"
        )
        raise SystemExit(2) from None
    from .memory import freeze_start_up

    freeze_start_up()  # the imports stay: out of the garbage collector's walks
    cli()
