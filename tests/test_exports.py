"""Public names: each package's __all__ is sorted and every name in it resolves."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["kanal_collector", "kanal_collector.messages",
                                     "kanal_collector.products"])
def test_all_is_sorted_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(module, name) is not None
