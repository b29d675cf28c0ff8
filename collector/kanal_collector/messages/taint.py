"""Where a rendered string came from: the template's own text, or data.

Two marks are kept while a message is rendered under a link guard (linkguard.py):

- every `{{ … }}` output is wrapped in two private-use characters (`DATA_START` …
  `DATA_END`), through the environment's `finalize`, so that afterwards each character
  of the output is known to be the template's literal text or an expression's;
- untrusted values (an untrusted trigger's properties, traits written by untrusted
  events) are handed to the template inside `Watched` containers that note every read,
  so that afterwards it is known whether the render used untrusted data at all.

Together they answer "could untrusted data have chosen this link's host?" soundly, however
the template combines values (filters, `~`, `set`, loops): if nothing untrusted was
read, nothing untrusted could reach the output; if something was, every host an
expression wrote is checked. Marks are removed before the output leaves the renderer;
marker characters inside values are dropped, so data can't forge a mark.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from markupsafe import Markup

DATA_START = "\ue000"
DATA_END = "\ue001"


def _unmarked(text: str) -> str:
    # str.replace is far quicker than str.translate with a deletion table.
    if DATA_START in text or DATA_END in text:
        return text.replace(DATA_START, "").replace(DATA_END, "")
    return text


class Reads:
    """Whether untrusted data has been read since `reset` (one template's render)."""

    def __init__(self) -> None:
        self.untrusted = False

    def reset(self) -> None:
        """Start counting afresh."""
        self.untrusted = False


_ACTIVE: ContextVar[Reads | None] = ContextVar("kanal_render_reads", default=None)


def activate(reads: Reads | None) -> Any:
    """Mark expression outputs in renders on this thread (None: stop); returns a token
    for `deactivate`."""
    return _ACTIVE.set(reads)


def deactivate(token: Any) -> None:
    """Undo `activate`."""
    _ACTIVE.reset(token)


def finalize(value: Any) -> Any:
    """The environment's finalize: wrap an expression's output in data marks (only while
    a guarded render is active; otherwise the value as it is)."""
    if _ACTIVE.get() is None:
        return value
    if isinstance(value, Markup):
        return Markup(DATA_START + _unmarked(str(value)) + DATA_END)
    if hasattr(value, "__html__") and not isinstance(value, str):
        return Markup(DATA_START + _unmarked(str(value.__html__())) + DATA_END)
    return DATA_START + _unmarked(str(value)) + DATA_END


def strip(text: str) -> str:
    """Output without its marks."""
    return _unmarked(text)


_MARK = re.compile(f"[{DATA_START}{DATA_END}]")


def spans(marked: str) -> tuple[str, list[bool]]:
    """(the text without marks, for each of its characters whether data wrote it)."""
    parts: list[str] = []
    flags: list[bool] = []
    depth = 0
    position = 0
    for match in _MARK.finditer(marked):
        segment = marked[position:match.start()]
        parts.append(segment)
        flags.extend([depth > 0] * len(segment))
        depth = depth + 1 if match.group() == DATA_START else max(0, depth - 1)
        position = match.end()
    segment = marked[position:]
    parts.append(segment)
    flags.extend([depth > 0] * len(segment))
    return "".join(parts), flags


def _note(reads: Reads) -> None:
    reads.untrusted = True


def watch(value: Any, reads: Reads) -> Any:
    """`value` with every container in it replaced by one that notes reads."""
    if isinstance(value, Mapping):
        return Watched(value, reads)
    if isinstance(value, list | tuple):
        return WatchedList(value, reads)
    return value


class Watched(dict[str, Any]):
    """A mapping whose reads (of `keys`, or of every key) mark the render as having used
    untrusted data. A dict, so the sandbox treats it as one (immutable)."""

    def __init__(self, data: Mapping[str, Any], reads: Reads,
                 keys: Collection[str] | None = None) -> None:
        watched = None if keys is None else frozenset(keys)
        super().__init__({k: watch(v, reads) if watched is None or k in watched else v
                          for k, v in data.items()})
        self._reads = reads
        self._keys = None if keys is None else frozenset(keys)

    def _read(self, key: Any = None) -> None:
        if self._keys is None or key is None or key in self._keys:
            _note(self._reads)

    def __getitem__(self, key: str) -> Any:
        self._read(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        """A value (noted as read)."""
        self._read(key)
        return super().get(key, default)

    def _all(self) -> None:
        if self._keys is None or self._keys & set(super().keys()):
            _note(self._reads)

    def items(self) -> Any:
        """Every item (noted as read)."""
        self._all()
        return super().items()

    def values(self) -> Any:
        """Every value (noted as read)."""
        self._all()
        return super().values()

    def keys(self) -> Any:
        """Every key (noted as read: untrusted data chose them)."""
        self._all()
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        self._all()
        return super().__iter__()

    def __len__(self) -> int:
        self._all()
        return super().__len__()

    def __contains__(self, key: object) -> bool:
        self._read(key)
        return super().__contains__(key)

    def __repr__(self) -> str:
        self._all()
        return super().__repr__()

    __str__ = __repr__


class WatchedList(list[Any]):
    """A list whose reads mark the render as having used untrusted data."""

    def __init__(self, data: Any, reads: Reads) -> None:
        super().__init__(watch(v, reads) for v in data)
        self._reads = reads

    def __getitem__(self, index: Any) -> Any:
        _note(self._reads)
        return super().__getitem__(index)

    def __iter__(self) -> Iterator[Any]:
        _note(self._reads)
        return super().__iter__()

    def __len__(self) -> int:
        _note(self._reads)
        return super().__len__()

    def __contains__(self, value: object) -> bool:
        _note(self._reads)
        return super().__contains__(value)

    def __repr__(self) -> str:
        _note(self._reads)
        return super().__repr__()

    __str__ = __repr__
