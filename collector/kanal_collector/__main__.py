"""`python -m kanal_collector` is the `kanal` command."""

from __future__ import annotations

from ._entry import main

main()
