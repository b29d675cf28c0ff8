"""Public names: each package's __all__ is sorted and every name in it resolves; the
packages whose names are imported on first use (exports.py) list exactly __all__."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = ["kanal_collector", "kanal_collector.audiences", "kanal_collector.channels",
            "kanal_collector.deliverability", "kanal_collector.journeys",
            "kanal_collector.messages", "kanal_collector.predict", "kanal_collector.products",
            "kanal_collector.profiles", "kanal_collector.reports", "kanal_collector.tracking"]
LAZY = [p for p in PACKAGES if p != "kanal_collector" and p != "kanal_collector.predict"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(module, name) is not None



@pytest.mark.parametrize("package", LAZY)
def test_lazy_names_are_all_and_each_is_its_module_s_object(package: str) -> None:
    module = importlib.import_module(package)
    lazy = module._lazy
    assert set(lazy.names) == set(module.__all__)
    for name, where in lazy.names.items():
        value = getattr(module, name)
        assert not inspect.ismodule(value), name  # a name equal to its module's
        assert value is getattr(importlib.import_module(where, package), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018
