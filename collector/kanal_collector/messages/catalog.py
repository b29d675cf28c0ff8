"""Message definitions: YAML files in `messages/` (or dicts), validated when loaded.

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
        email: {subject: ...}  # a field a variant leaves out comes from the default
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import Config
from ..filestamp import Stamp, files_stamp
from .errors import DefinitionError, MessageError
from .renderer import (
    Rendered,
    Trust,
    choose_language,
    compile_value,
    guarded_context,
    normalize_language,
    render_value,
    template_context,
)

log = logging.getLogger("kanal.messages")

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
_CONSOLE_FALLBACK = ("email", "sms", "push", "webhook")
_TOP_KEYS = frozenset({"name", "kind", "topic", "language", "defaults", "languages",
                       "description", *FIELDS})


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
        """Render the content for a channel kind in the best language for `language`;
        `functions` are the template functions (`product`, `recommend`, …).

        With `trust`, a link that untrusted input aimed at a host it doesn't allow makes
        the render fail (LinkHostError, naming the host; linkguard.py)."""
        source_kind = self._source_kind(kind)
        chosen = choose_language(self.variants, language, self.language)
        fields = dict(self.variants[self.language][source_kind])
        if chosen != self.language:
            fields.update(self.variants[chosen].get(source_kind, {}))
        context = template_context(
            traits=traits or {}, defaults=self.defaults, profile=profile or {},
            data=data or {}, message={"name": self.name, "kind": self.kind,
                                      "topic": self.topic},
            channel=channel or kind, language=chosen, functions=functions)
        where = f"message {self.name!r} ({chosen}) {source_kind}"
        guard = None
        if trust is not None and (set(trust.untrusted_data) & set(data or {})
                                  or set(trust.untrusted_traits) & set(traits or {})):
            # Only a render with untrusted input needs the marks (all-trusted ones can
            # aim links anywhere, as before).
            context, guard = guarded_context(context, trust)
        content = {name: render_value(value, context, where=f"{where}.{name}", guard=guard)
                   for name, value in fields.items()}
        return Rendered(self.name, kind, chosen, content)

    def _source_kind(self, kind: str) -> str:
        base = self.variants[self.language]
        if kind in base:
            return kind
        if kind == "console":
            for other in _CONSOLE_FALLBACK:
                if other in base:
                    return other
        raise MessageError(f"message {self.name!r} has no {kind} content")


def parse_message(data: Any, *, source: str = "<dict>", name: str | None = None) -> Message:
    """Validate one definition (a mapping, as read from YAML) and compile its templates."""
    if not isinstance(data, Mapping):
        raise DefinitionError(f"{source}: a message must be a mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise DefinitionError(f"{source}: unknown key {', '.join(sorted(map(str, unknown)))}")
    name = data.get("name", name)
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError(f"{source}: `name` must be a non-empty string")
    kind = data.get("kind", "marketing")
    if kind not in MESSAGE_KINDS:
        raise DefinitionError(f"{source}: `kind` must be marketing or transactional, "
                              f"not {kind!r}")
    topic = data.get("topic")
    if topic is not None and (not isinstance(topic, str) or not topic):
        raise DefinitionError(f"{source}: `topic` must be a non-empty string")
    language = data.get("language", "en")
    if not isinstance(language, str) or not language.strip():
        raise DefinitionError(f"{source}: `language` must be a language tag like en")
    language = normalize_language(language)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise DefinitionError(f"{source}: `defaults` must be a mapping of trait defaults")

    where = f"{source}: {name}"
    base = _content(data, where=where, required=True)
    if not base:
        raise DefinitionError(f"{source}: no content; give at least one of "
                              f"{', '.join(CONTENT_KINDS)}")
    variants = {language: base}
    languages = data.get("languages") or {}
    if not isinstance(languages, Mapping):
        raise DefinitionError(f"{source}: `languages` must map language tags to content")
    for tag, variant in languages.items():
        if not isinstance(variant, Mapping):
            raise DefinitionError(f"{source}: languages.{tag} must be a mapping")
        extra = set(variant) - set(FIELDS)
        if extra:
            raise DefinitionError(f"{source}: languages.{tag}: unknown key "
                                  f"{', '.join(sorted(map(str, extra)))}")
        missing_kinds = set(variant) - set(base)
        if missing_kinds:
            raise DefinitionError(
                f"{source}: languages.{tag} has {', '.join(sorted(missing_kinds))} content "
                "the default language lacks")
        norm = normalize_language(str(tag))
        if norm == language:
            raise DefinitionError(f"{source}: languages.{tag} repeats the default language")
        variants[norm] = _content(variant, where=f"{where} languages.{tag}", required=False)
    return Message(name.strip(), str(kind), topic, language, dict(defaults), variants, source)


def _content(data: Mapping[str, Any], *, where: str,
             required: bool) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind, fields in FIELDS.items():
        section = data.get(kind)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            raise DefinitionError(f"{where}: `{kind}` must be a mapping of "
                                  f"{', '.join(fields)}")
        unknown = set(section) - set(fields)
        if unknown:
            raise DefinitionError(f"{where}: {kind}: unknown field "
                                  f"{', '.join(sorted(map(str, unknown)))}")
        if required:
            for name, needed in fields.items():
                if needed and section.get(name) in (None, ""):
                    raise DefinitionError(f"{where}: {kind}.{name} is required")
            if kind == "email" and not (section.get("html") or section.get("text")):
                raise DefinitionError(f"{where}: email needs html or text (or both)")
        compiled: dict[str, Any] = {}
        for name, value in section.items():
            if name not in ("data", "payload") and not isinstance(value, str):
                raise DefinitionError(f"{where}: {kind}.{name} must be a string")
            compiled[name] = compile_value(value, html=(kind, name) == ("email", "html"),
                                           where=f"{where}: {kind}.{name}")
        out[kind] = compiled
    return out


def load_file(path: Path) -> Message:
    """Read and validate one message file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: invalid YAML: {exc}") from None
    return parse_message(data, source=str(path), name=path.stem)


def message_files(directory: Path) -> list[Path]:
    """The message files of a directory (*.yaml, *.yml, also in subfolders), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def load_directory(directory: Path) -> dict[str, Message]:
    """Every message of a directory; DefinitionError listing every problem found."""
    messages: dict[str, Message] = {}
    problems: list[str] = []
    for path in message_files(directory):
        try:
            message = load_file(path)
        except DefinitionError as exc:
            problems.append(str(exc))
            continue
        if message.name in messages:
            problems.append(f"{path}: message {message.name!r} is also defined in "
                            f"{messages[message.name].source}")
            continue
        messages[message.name] = message
    if problems:
        raise DefinitionError("\n".join(problems))
    return messages


def messages_dir(config: Config) -> Path:
    """Where message files live: $KANAL_MESSAGES_DIR, `[messages] messages_dir`, messages/."""
    env = os.environ.get("KANAL_MESSAGES_DIR")
    if env:
        return Path(env)
    value = config.section("messages").get("messages_dir")
    return Path(str(value)) if value else Path("messages")


@dataclass
class Catalog:
    """The messages the dispatcher and enqueue know, reloaded when their files change."""

    messages: dict[str, Message] = field(default_factory=dict)
    directory: Path | None = None
    _stamp: tuple[tuple[str, float, int], ...] = ()

    @classmethod
    def from_dicts(cls, definitions: Iterable[Mapping[str, Any]]) -> Catalog:
        """A catalog of definitions given as mappings (tests, embedding)."""
        messages: dict[str, Message] = {}
        for i, data in enumerate(definitions):
            message = parse_message(data, source=f"<definition {i}>")
            if message.name in messages:
                raise DefinitionError(f"message {message.name!r} is defined twice")
            messages[message.name] = message
        return cls(messages)

    @classmethod
    def from_directory(cls, directory: Path) -> Catalog:
        """The messages of a directory (empty when it does not exist)."""
        catalog = cls(directory=directory)
        catalog.messages = load_directory(directory)
        catalog._stamp = catalog._files_stamp()
        return catalog

    def get(self, name: str) -> Message:
        """The message called `name`; MessageError when there is none."""
        try:
            return self.messages[name]
        except KeyError:
            where = f" in {self.directory}" if self.directory else ""
            raise MessageError(f"no message named {name!r}{where}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.messages

    def refresh(self) -> bool:
        """Reload from the directory when its files changed; True when reloaded.

        A broken edit keeps the previous messages (and is logged): a typo in one file
        must not stop every send.
        """
        if self.directory is None:
            return False
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.messages = load_directory(self.directory)
        except DefinitionError as exc:
            log.error("message files not reloaded:\n%s", exc)
            return False
        return True

    def _files_stamp(self) -> Stamp:
        assert self.directory is not None
        return files_stamp(message_files(self.directory))
