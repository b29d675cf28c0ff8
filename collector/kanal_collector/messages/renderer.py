"""The one renderer: sandboxed Jinja, per-channel content, language variants, defaults.

Templates run in `ImmutableSandboxedEnvironment` (no attribute starting with `_`, no
mutation of the values handed in, bounded `range`). Only email HTML is autoescaped;
subjects, texts, SMS, push and webhook payloads are plain text. Reaching for an unsafe
attribute (`{{ ''.__class__ }}`) raises instead of quietly rendering nothing.

A missing trait renders as an empty string, so `{{ traits.first_name | default("there") }}`
works; a message's `defaults:` map fills missing traits for every template of it. An
unknown top-level name (`{{ trait.first_name }}`, a typo) is a load-time error
(`kanal messages validate`), as are syntax errors and unknown filters.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from jinja2 import (
    ChainableUndefined,
    Template,
    TemplateError,
    TemplateRuntimeError,
    UndefinedError,
    meta,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing

from . import linkguard, taint
from .errors import DefinitionError, RenderError, SkipSend
from .linkguard import LinkPolicy

# What a template may name at its top level (besides Jinja's own globals). The product
# functions are handed in by whoever renders (the dispatcher: products/templates.py).
FUNCTION_NAMES = frozenset({"product", "recommend", "product_block"})
CONTEXT_NAMES = frozenset({"traits", "profile", "data", "message", "channel", "language",
                           *FUNCTION_NAMES})


class _Undefined(ChainableUndefined):
    """Missing values render empty and chain; unsafe attribute access raises at once."""

    __slots__ = ()

    def __init__(self, hint: str | None = None, obj: Any = missing, name: str | None = None,
                 exc: type[TemplateRuntimeError] = UndefinedError) -> None:
        if exc is SecurityError:
            raise SecurityError(hint or f"access to {name!r} is unsafe")
        super().__init__(hint, obj, name, exc)


def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape, undefined=_Undefined, keep_trailing_newline=True,
        trim_blocks=False, finalize=taint.finalize,
    )
    return env


_TEXT = _environment(False)
_HTML = _environment(True)
_ALLOWED = CONTEXT_NAMES | frozenset(_TEXT.globals)


def compile_template(source: str, *, html: bool, where: str) -> Template:
    """Compile one template, or raise DefinitionError naming `where` and the line."""
    env = _HTML if html else _TEXT
    try:
        unknown = meta.find_undeclared_variables(env.parse(source)) - _ALLOWED
        template = env.from_string(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        at = f" (line {line})" if line else ""
        raise DefinitionError(f"{where}{at}: {exc.message or exc}") from None
    if unknown:
        names = ", ".join(sorted(unknown))
        raise DefinitionError(
            f"{where}: unknown name {names}; templates may use "
            f"{', '.join(sorted(CONTEXT_NAMES))}")
    return template


def compile_value(value: Any, *, html: bool, where: str) -> Any:
    """Compile every string inside a JSON-like value (dicts, lists) into a template."""
    if isinstance(value, str):
        return compile_template(value, html=html, where=where)
    if isinstance(value, Mapping):
        return {str(k): compile_value(v, html=html, where=f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [compile_value(v, html=html, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise DefinitionError(f"{where}: unsupported value {type(value).__name__}")


@dataclass(frozen=True)
class Trust:
    """What of a render's input is untrusted, and where its links may then point.

    Untrusted: the `data` keys in `untrusted_data` (an untrusted trigger's properties)
    and the traits in `untrusted_traits` (last written by untrusted events). Links data
    aimed in a field that read untrusted input must go to `policy`'s hosts or to a host
    trusted input names (linkguard.py).
    """

    policy: LinkPolicy = LinkPolicy()
    untrusted_data: Collection[str] = ()
    untrusted_traits: Collection[str] = ()


@dataclass
class _Guard:
    reads: taint.Reads
    policy: LinkPolicy
    trusted_hosts: set[str]


def render_value(value: Any, context: Mapping[str, Any], *, where: str,
                 guard: _Guard | None = None) -> Any:
    """Render a compiled value (from `compile_value`) with `context`.

    With a `guard`, every template's links are checked when it read untrusted data.
    """
    if isinstance(value, Template):
        try:
            if guard is None:
                return value.render(context)
            guard.reads.reset()
            token = taint.activate(guard.reads)
            try:
                marked = value.render(context)
            finally:
                taint.deactivate(token)
            if guard.reads.untrusted:
                linkguard.check(marked, html=value.environment.autoescape is True,
                                policy=guard.policy, trusted_hosts=guard.trusted_hosts,
                                where=where)
            return taint.strip(marked)
        except (RenderError, SkipSend):
            raise
        except SecurityError as exc:
            _fail(where, f"refused: {exc}")
        except TemplateError as exc:
            _fail(where, exc.message or str(exc))
        except Exception as exc:  # a template's own arithmetic or filter errors
            _fail(where, f"{type(exc).__name__}: {exc}")
    if isinstance(value, dict):
        return {k: render_value(v, context, where=f"{where}.{k}", guard=guard)
                for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, where=f"{where}[{i}]", guard=guard)
                for i, v in enumerate(value)]
    return value


def guarded_context(context: dict[str, Any], trust: Trust) -> tuple[dict[str, Any], _Guard]:
    """The context with untrusted input watched, and the guard for its render."""
    reads = taint.Reads()
    data = dict(context["data"])
    trusted_data = {k: v for k, v in data.items() if k not in trust.untrusted_data}
    for key in trust.untrusted_data:
        if key in data:
            data[key] = taint.watch(data[key], reads)
    traits = context["traits"]
    untrusted = set(trust.untrusted_traits) & set(traits)
    trusted_traits = {k: v for k, v in traits.items() if k not in untrusted}
    if untrusted:
        traits = taint.Watched(traits, reads, keys=untrusted)
    hosts = linkguard.hosts_in([trusted_data, trusted_traits, context["profile"]])
    guard = _Guard(reads, trust.policy, hosts)
    # What the template functions return is the catalogue's (trusted): the hosts of its
    # links (a product's page) may be linked to whatever chose the product.
    functions = {name: _noting_hosts(context[name], guard) for name in FUNCTION_NAMES
                 if name in context}
    return {**context, **functions, "data": data, "traits": traits}, guard


def _noting_hosts(function: Any, guard: _Guard) -> Any:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        guard.trusted_hosts |= linkguard.hosts_in([result])
        return result

    return call


def _fail(where: str, message: str) -> NoReturn:
    raise RenderError(f"{where}: {message}")


@dataclass(frozen=True)
class Rendered:
    """A message rendered for one person and one channel kind."""

    message: str
    kind: str
    language: str
    content: dict[str, Any]


def template_context(*, traits: Mapping[str, Any], defaults: Mapping[str, Any],
                     profile: Mapping[str, Any], data: Mapping[str, Any],
                     message: Mapping[str, Any], channel: str, language: str,
                     functions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What templates see: traits with the message's defaults filled in, and the rest.

    `functions` are the template functions of this rendering (FUNCTION_NAMES); without
    them a template calling one fails to render.
    """
    filled = dict(traits)
    for name, value in defaults.items():
        if filled.get(name) in (None, ""):
            filled[name] = value
    context = {name: fn for name, fn in (functions or {}).items() if name in FUNCTION_NAMES}
    context.update({"traits": filled, "profile": dict(profile), "data": dict(data),
                    "message": dict(message), "channel": channel, "language": language})
    return context
