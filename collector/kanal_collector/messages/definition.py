"""One message definition: validate it (every problem, with FILE:LINE) and render it.

A definition (one file, `messages/cart_reminder.yaml`; the name defaults to the stem):

    name: cart_reminder
    kind: marketing            # or transactional
    topic: cart                # optional: the subscription topic it belongs to
    language: en               # language of the top-level content (default "en")
    defaults: {first_name: there}
    email: {subject: ..., html: ..., text: ...}
    sms: {text: ...}
    push: {title: ..., body: ..., data: {key: template}}
    webhook: {payload: {...}}  # any JSON; every string in it is a template
    console: {text: ...}       # optional; else the console shows another kind's content
    languages:
      sv:
        defaults: {first_name: där}   # this language's own defaults (over the ones above)
        email: {subject: ...}  # a field a variant leaves out comes from the default
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import yamlfile
from ..yamlfile import FieldPath, Lines, Problem, where
from .errors import DefinitionError, MessageError
from .languages import choose_language, is_language_tag, normalize_language
from .renderer import (
    Rendered,
    Trust,
    compile_value,
    guarded_context,
    render_value,
    template_context,
)

MESSAGE_KINDS = ("marketing", "transactional")
# Content fields of each channel kind: (field, required).
FIELDS: dict[str, dict[str, bool]] = {
    "email": {"subject": True, "html": False, "text": False},
    "sms": {"text": True},
    "push": {"title": False, "body": True, "data": False},
    "webhook": {"payload": True},
    "console": {"text": True},
}
CONTENT_KINDS = tuple(FIELDS)
# What the console channel shows when a message has no console content of its own.
CONSOLE_FALLBACK = ("email", "sms", "push", "webhook")
_TOP_KEYS = frozenset({"name", "kind", "topic", "language", "defaults", "languages",
                       "description", *FIELDS})
_VARIANT_KEYS = frozenset({"defaults", *FIELDS})


@dataclass(frozen=True)
class Message:
    """A validated message: compiled templates per language and channel kind."""

    name: str
    kind: str
    topic: str | None
    language: str
    defaults: dict[str, Any]
    variants: dict[str, dict[str, dict[str, Any]]]
    """{language: {channel kind: {field: compiled value}}}; the default language first."""
    source: str = "<dict>"
    variant_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    """{language: trait defaults of that language}, over `defaults`."""

    @property
    def kinds(self) -> frozenset[str]:
        """Channel kinds this message has content for (console always works)."""
        kinds = set(self.variants[self.language])
        if kinds:
            kinds.add("console")
        return frozenset(kinds)

    @property
    def languages(self) -> list[str]:
        """The languages it has variants for, the default first."""
        return list(self.variants)

    def has_content(self, kind: str) -> bool:
        """True when this message can be rendered for a channel of `kind`."""
        return kind in self.kinds

    def render(self, kind: str, *, traits: Mapping[str, Any] | None = None,
               profile: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
               language: str | None = None, channel: str | None = None,
               functions: Mapping[str, Any] | None = None,
               trust: Trust | None = None) -> Rendered:
        """Render the content for a channel kind in the best language for `language`
        (BCP 47 matching, languages.py); `functions` are the template functions
        (`product`, `recommend`, …).

        With `trust`, a link that untrusted input aimed at a host it doesn't allow makes
        the render fail (LinkHostError, naming the host; linkguard.py)."""
        source_kind = self.source_kind(kind)
        chosen = choose_language(self.variants, language, self.language)
        fields = dict(self.variants[self.language][source_kind])
        if chosen != self.language:
            fields.update(self.variants[chosen].get(source_kind, {}))
        defaults = {**self.defaults, **self.variant_defaults.get(chosen, {})}
        context = template_context(
            traits=traits or {}, defaults=defaults, profile=profile or {},
            data=data or {}, message={"name": self.name, "kind": self.kind,
                                      "topic": self.topic},
            channel=channel or kind, language=chosen, functions=functions)
        at = f"message {self.name!r} ({chosen}) {source_kind}"
        guard = None
        if trust is not None and (set(trust.untrusted_data) & set(data or {})
                                  or set(trust.untrusted_traits) & set(traits or {})):
            # Only a render with untrusted input needs the marks (all-trusted ones can
            # aim links anywhere, as before).
            context, guard = guarded_context(context, trust)
        content = {name: render_value(value, context, where=f"{at}.{name}", guard=guard)
                   for name, value in fields.items()}
        return Rendered(self.name, kind, chosen, content)

    def source_kind(self, kind: str) -> str:
        """The content kind rendered for a channel of `kind` (the console channel shows
        its own content, else the first of email, sms, push, webhook)."""
        base = self.variants[self.language]
        if kind in base:
            return kind
        if kind == "console":
            for other in CONSOLE_FALLBACK:
                if other in base:
                    return other
        raise MessageError(f"message {self.name!r} has no {kind} content")


class _Checker:
    """Collects every problem of one definition, each with its field and line."""

    def __init__(self, source: str, lines: Lines | None) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []

    def error(self, path: FieldPath, message: str) -> None:
        line = self.lines.line(path) if self.lines is not None else None
        self.problems.append(Problem(self.source, line, where(path), message))

    def text(self, data: Mapping[str, Any], key: str, default: Any, what: str) -> Any:
        value = data.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            self.error((key,), f"`{key}` must be {what}")
            return None
        return value

    def defaults(self, value: Any, path: FieldPath) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, "`defaults` must be a mapping of trait defaults")
            return {}
        return dict(value)

    def content(self, data: Mapping[str, Any], path: FieldPath, *,
                required: bool) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for kind, fields in FIELDS.items():
            section = data.get(kind)
            if section is None:
                continue
            here = (*path, kind)
            if not isinstance(section, Mapping):
                self.error(here, f"`{kind}` must be a mapping of {', '.join(fields)}")
                continue
            for name in sorted(set(map(str, section)) - set(fields)):
                self.error((*here, name), f"unknown field {name}")
            if required:
                for name, needed in fields.items():
                    if needed and section.get(name) in (None, ""):
                        self.error((*here, name), "required")
                if kind == "email" and not (section.get("html") or section.get("text")):
                    self.error(here, "email needs html or text (or both)")
            compiled: dict[str, Any] = {}
            for name, value in section.items():
                if name not in fields:
                    continue
                at = (*here, str(name))
                if name not in ("data", "payload") and not isinstance(value, str):
                    self.error(at, "must be a string")
                    continue
                try:
                    compiled[name] = compile_value(
                        value, html=(kind, name) == ("email", "html"), where=where(at))
                except DefinitionError as exc:
                    text = str(exc).removeprefix(where(at)).lstrip(": ")
                    self.error(at, re.sub(r"^\(line (\d+)\):", r"template line \1:", text))
            out[kind] = compiled
        return out


def parse_message(data: Any, *, source: str = "<dict>", name: str | None = None,
                  lines: Lines | None = None) -> Message:
    """Validate one definition (a mapping, as read from YAML) and compile its templates;
    DefinitionError lists every problem (with its line, given the document's `lines`)."""
    c = _Checker(source, lines)
    message = _check(c, data, name)
    if c.problems or message is None:
        problems = sorted(c.problems, key=lambda p: (p.line or 0, p.where))
        raise DefinitionError("\n".join(map(str, problems)), problems)
    return message


def _check(c: _Checker, data: Any, name: str | None) -> Message | None:
    if not isinstance(data, Mapping):
        c.error((), "a message must be a mapping")
        return None
    for key in sorted(set(map(str, data)) - _TOP_KEYS):
        c.error((key,), f"unknown key {key}")
    name = c.text(data, "name", name, "a non-empty string")
    if name is None and "name" not in data:
        c.error(("name",), "`name` must be a non-empty string")
    kind = data.get("kind", "marketing")
    if kind not in MESSAGE_KINDS:
        c.error(("kind",), f"`kind` must be marketing or transactional, not {kind!r}")
    topic = c.text(data, "topic", None, "a non-empty string")
    language = c.text(data, "language", "en", "a language tag like en")
    if language is not None and not is_language_tag(language):
        c.error(("language",), f"`language` must be a language tag like en or sv-SE, "
                               f"not {language!r}")
    language = normalize_language(language or "en")
    defaults = c.defaults(data.get("defaults"), ("defaults",))
    base = c.content(data, (), required=True)
    if not any(kind in data for kind in FIELDS):
        c.error((), f"no content; give at least one of {', '.join(CONTENT_KINDS)}")
    variants = {language: base}
    variant_defaults: dict[str, dict[str, Any]] = {}
    languages = data.get("languages") or {}
    if not isinstance(languages, Mapping):
        c.error(("languages",), "`languages` must map language tags to content")
        languages = {}
    for tag, variant in languages.items():
        here: FieldPath = ("languages", str(tag))
        if not is_language_tag(str(tag)):
            c.error(here, f"{tag!r} is not a language tag like sv or sv-SE")
        if not isinstance(variant, Mapping):
            c.error(here, "must be a mapping")
            continue
        for key in sorted(set(map(str, variant)) - _VARIANT_KEYS):
            c.error((*here, key), f"unknown key {key}")
        lacking = sorted(set(variant) & set(FIELDS) - set(base))
        if lacking:
            c.error(here, f"has {', '.join(lacking)} content the default language lacks")
        norm = normalize_language(str(tag))
        if norm == language:
            c.error(here, "repeats the default language")
        variants[norm] = c.content(variant, here, required=False)
        own = c.defaults(variant.get("defaults"), (*here, "defaults"))
        if own:
            variant_defaults[norm] = own
    if c.problems or name is None:
        return None
    return Message(name.strip(), str(kind), topic, language, defaults, variants,
                   c.source, variant_defaults)


def load_file(path: Path) -> Message:
    """Read and validate one message file; DefinitionError lists every problem as
    FILE:LINE: FIELD: WHAT (an ambiguous unquoted YAML value is one, see yamlfile.py)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(str(path), None, "", str(exc))
        raise DefinitionError(str(problem), [problem]) from None
    document = yamlfile.read(text, source=str(path))
    if document.data is None and document.problems:
        raise DefinitionError("\n".join(map(str, document.problems)), document.problems)
    c = _Checker(str(path), document.lines)
    message = _check(c, document.data, path.stem)
    problems = yamlfile.combine(document.problems, c.problems)
    if problems or message is None:
        raise DefinitionError("\n".join(map(str, problems)), problems)
    return message
