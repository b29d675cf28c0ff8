"""Query-string arguments of the dashboard's paged pages."""

from __future__ import annotations

from typing import overload

from flask import request


@overload
def int_arg(name: str, default: int, *, high: int) -> int: ...
@overload
def int_arg(name: str, default: None, *, high: int) -> int | None: ...


def int_arg(name: str, default: int | None, *, high: int) -> int | None:
    """A whole number from 0 to `high` in the query string; `default` when it is missing
    or not such a number (a hand-edited link shows the first page, not an error)."""
    raw = (request.args.get(name) or "").strip()
    if not raw.isdigit() or len(raw) > 20:
        return default
    value = int(raw)
    return value if value <= high else default


def text_arg(name: str, *, limit: int = 200) -> str | None:
    """A trimmed text argument; None when it is missing or empty."""
    value = (request.args.get(name) or "").strip()[:limit]
    return value or None
