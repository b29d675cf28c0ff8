"""Noticing that definition files (journeys, messages) changed, without reading them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

Stamp = tuple[tuple[str, float, int], ...]


def files_stamp(paths: Iterable[Path]) -> Stamp:
    """(path, mtime, size) of each file that still exists: equal stamps, same files."""
    out = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_mtime, st.st_size))
    return tuple(out)
