"""The README and the pages of docs/, for tests that read the documentation.

`pages()` gives the README first, then every page of docs/ in the order of the table of
contents in docs/index.md: the order a reader meets them, and the order the examples run.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_TOCTREE = re.compile(r"```\{toctree\}\n(.*?)```", re.S)


def page_names() -> list[str]:
    """The pages of docs/index.md's toctrees, in order (names without `.md`)."""
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    names: list[str] = []
    for block in _TOCTREE.findall(text):
        names += [line.strip() for line in block.splitlines()
                  if line.strip() and not line.startswith(":")]
    return names


def pages() -> list[Path]:
    """README.md, then docs/index.md and every page it lists."""
    return [README, DOCS / "index.md", *(DOCS / f"{name}.md" for name in page_names())]


def text_of(name: str) -> str:
    """One page of docs/ by name (`"journeys"`)."""
    return (DOCS / f"{name}.md").read_text(encoding="utf-8")


def all_text() -> str:
    """The README and every page, one after the other."""
    return "\n".join(path.read_text(encoding="utf-8") for path in pages())
