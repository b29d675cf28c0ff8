"""Splitting long lists of values into pieces a statement takes at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

LIMIT = 500
"""Values in one `IN (…)` list: far below both engines' limits on parameters."""


def chunks(items: Sequence[Any], size: int = LIMIT) -> Iterator[list[Any]]:
    """`items` in lists of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
