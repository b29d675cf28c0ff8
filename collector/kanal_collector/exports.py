"""Package names imported on first use (PEP 562), so that importing one module of a
package doesn't import all of it.

Importing `kanal_collector.reports.touchpoints` runs `reports/__init__.py` first; when
that file imported every report, and `messages/__init__.py` the dispatcher, each `kanal
report` paid for Flask, the SMTP channel, DKIM and DNS before printing a number. A
package's `__init__.py` now lists its public names and the module each comes from, and
its module `__getattr__` imports one when it is first read; type checkers see the same
names through an `if TYPE_CHECKING:` import block.

A public name must not equal its module's name (`enqueue` lives in `enqueuing.py`):
importing the module would make the package attribute the module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


class LazyExports:
    """The names of `package` and the module each is imported from (relative to the
    package, e.g. ".catalog"); calling it with a name imports that name and caches it
    on the package."""

    def __init__(self, package: str, names: Mapping[str, str]) -> None:
        self.package = package
        self.names = dict(names)

    def __call__(self, name: str) -> Any:
        module = self.names.get(name)
        if module is None:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, self.package), name)
        setattr(importlib.import_module(self.package), name, value)
        return value


def lazy_exports(package: str, names: Mapping[str, str]) -> LazyExports:
    """What a package's `__getattr__` calls (see the module docstring)."""
    return LazyExports(package, names)
