"""Definition files in YAML (journeys, segments, messages): read strictly, with lines.

YAML 1.1 (what PyYAML reads) and YAML 1.2 (what most other tools and editors read) do
not agree on every unquoted value, and some unquoted values lose characters on the way:

    country in: [SE, NO, DK]      NO is false in YAML 1.1 (and every Norwegian is lost)
    on: / off: / yes / y / n      booleans in YAML 1.1, strings in YAML 1.2
    zip: 01234                    the octal number 668 in YAML 1.1
    at: 18:00                     the number 1080 (base 60) in YAML 1.1
    since: 2026-03-01             a date object, not the text
    phone: +46701234567           the number 46701234567: the + is gone
    amount: 1_000, 1e3, 0b101     numbers in one version, strings in the other

Such an unquoted value in a file being loaded or validated is an error with FILE:LINE
that says to quote it. Text already stored (a journey version that runs are pinned to)
is read as it always was (`strict=False`): runs in flight must not change.

Problems are reported as `FILE:LINE: FIELD: WHAT`, the field a path like
`steps[0].wait` (`where`), the line found from the YAML node of that path (`Lines`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FieldPath = tuple[str | int, ...]
"""A field of a document: keys and list indexes from the top."""

_AMBIGUOUS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?:y|n|yes|no|on|off)$", re.I),
     "YAML 1.1 reads it as true or false, YAML 1.2 as text"),
    (re.compile(r"^[-+]?0[0-9][0-9_]*(?:\.[0-9_]*)?$"),
     "a number with a leading zero loses the zero (YAML 1.1 may even read it as octal)"),
    (re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$"),
     "YAML 1.1 reads it as a base-60 number (18:00 is 1080), YAML 1.2 as text"),
    (re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}"
                r":[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?$"),
     "YAML 1.1 reads it as a date or time, YAML 1.2 as text"),
    (re.compile(r"^\+[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$"),
     "read as a number, it loses its leading +"),
    # Plain numbers: only those with an underscore or an exponent YAML 1.1 doesn't take.
    (re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$"), ""),
    (re.compile(r"^[-+]?0b[01_]+$"), "YAML 1.1 reads it as a binary number, YAML 1.2 as text"),
    (re.compile(r"^[-+]?0o[0-7]+$"), "YAML 1.2 reads it as an octal number, YAML 1.1 as text"),
]
_UNDERSCORE = "a number with _ loses the _ in YAML 1.1 and is text in YAML 1.2"
_EXPONENT = "YAML 1.2 reads it as a number, YAML 1.1 as text (1e3)"


def ambiguity(text: str) -> str | None:
    """Why an unquoted YAML value `text` is read differently by YAML 1.1 and 1.2, or
    loses characters; None when it is read the same."""
    for pattern, why in _AMBIGUOUS:
        if pattern.match(text):
            if why:
                return why
            if "_" in text:
                return _UNDERSCORE
            # YAML 1.1 floats need a dot and a signed exponent; YAML 1.2's don't.
            if re.search(r"[eE]", text) and ("." not in text
                                             or not re.search(r"[eE][-+]", text)):
                return _EXPONENT
            return None
    return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a definition file: where (field path and line) and what."""

    source: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line else self.source
        return f"{at}: {self.where}: {self.message}" if self.where else f"{at}: {self.message}"


def where(path: FieldPath) -> str:
    """A field path as text: `steps[0].on_timeout[1].wait`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class Lines:
    """The line of every key and item of a YAML document, by field path."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[FieldPath, int] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: FieldPath) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                self.lines[sub] = key.start_mark.line + 1
                self._walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def line(self, path: FieldPath) -> int | None:
        """The line of `path`, else of its nearest parent that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def unquoted_problems(root: yaml.Node | None, source: str) -> list[Problem]:
    """Every unquoted value (or key) of a composed document that YAML 1.1 and 1.2 read
    differently, or that loses characters; each says to quote it."""
    problems: list[Problem] = []

    def visit(node: yaml.Node, path: FieldPath) -> None:
        if isinstance(node, yaml.ScalarNode):
            why = ambiguity(node.value) if node.style is None else None
            if why:
                problems.append(Problem(source, node.start_mark.line + 1, where(path),
                                        f"{node.value} is ambiguous: {why}; quote it: "
                                        f"\"{node.value}\""))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                visit(key, sub)
                visit(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, (*path, i))

    if root is not None:
        visit(root, ())
    return problems


def combine(document: list[Problem], checks: list[Problem]) -> list[Problem]:
    """The document's problems and the checks', by line; a check's problem about a
    field that already has an unquoted-value problem is left out (it follows from it)."""
    taken = {(p.line, p.where) for p in document}
    found = document + [p for p in checks if (p.line, p.where) not in taken]
    return sorted(found, key=lambda p: (p.line or 0, p.where))


@dataclass
class Document:
    """A parsed YAML definition file: its data, its lines, and what is wrong with it."""

    data: Any
    lines: Lines
    problems: list[Problem]


def read(text: str, *, source: str, strict: bool = True) -> Document:
    """Parse YAML text. A syntax error is the one problem of an empty document; with
    `strict`, every ambiguous unquoted value is a problem too (the data is still read,
    as YAML 1.1 reads it, so that other problems can be found as well)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = Problem(source, line, "",
                          f"invalid YAML: {getattr(exc, 'problem', None) or exc}")
        return Document(None, Lines(None), [problem])
    problems = unquoted_problems(root, source) if strict else []
    return Document(data, Lines(root), problems)


def read_file(path: Path, *, strict: bool = True) -> Document:
    """`read` a file; one that can't be read (missing, not UTF-8) is the one problem of
    an empty document."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Document(None, Lines(None), [Problem(str(path), None, "", str(exc))])
    return read(text, source=str(path), strict=strict)
