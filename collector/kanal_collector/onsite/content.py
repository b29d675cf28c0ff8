"""On-site content: a message's `onsite` section rendered for one visitor, made safe.

The shop's templates are the only source of markup. The body is rendered with Jinja's
autoescaping (a trait like `<img onerror=…>` arrives as text), then sanitised to a short
list of tags and attributes (nh3): no script, style, iframe, form or event-handler
attribute survives, links get `rel="noopener noreferrer"`, URLs must be http(s), mailto,
tel or relative. Our own check then refuses anything that still looks like script (so a
regression of the sanitiser can't ship markup that runs). Title, button and form texts
are plain text (the snippet sets them with `textContent`); the image and the button's
link must be http(s) URLs or paths on the shop's site.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import nh3

from ..messages.definition import Message
from ..messages.renderer import Trust

TAGS = frozenset({"a", "b", "br", "div", "em", "h2", "h3", "h4", "hr", "i", "img", "li",
                  "ol", "p", "s", "small", "span", "strong", "table", "tbody", "td", "th",
                  "thead", "tr", "u", "ul", "del"})
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"},
              "td": {"colspan", "rowspan", "valign"}, "th": {"colspan", "rowspan"},
              "*": {"class"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# What no tag of sanitised markup may be or hold, whatever the sanitiser's version does
# (text is escaped by then: every "<" left starts a real tag).
_TAG = re.compile(r"<[^>]*>?")
_BAD_TAG = re.compile(r"^<\s*/?\s*(script|style|iframe|object|embed|form|svg|math|template|"
                      r"link|meta|base|frame|frameset|noscript)\b", re.I)
_BAD_ATTRIBUTE = re.compile(r"[\s\"'/]on[a-z]+\s*=|(java|vb)script\s*:|data\s*:\s*text/html|"
                            r"\sstyle\s*=|\ssrcdoc\s*=", re.I)
MAX_TEXT = 2000
MAX_BODY = 20_000


class UnsafeContent(ValueError):
    """Rendered on-site content that can't be shown safely."""


def sanitize(html: str) -> str:
    """The body's markup reduced to safe tags and attributes; UnsafeContent if anything
    script-like is still there afterwards."""
    clean = nh3.clean(html, tags=set(TAGS), attributes={k: set(v) for k, v in
                                                        ATTRIBUTES.items()},
                      url_schemes=set(URL_SCHEMES), strip_comments=True,
                      link_rel="noopener noreferrer",
                      clean_content_tags={"script", "style"})
    for tag in _TAG.findall(clean):
        if _BAD_TAG.match(tag) or _BAD_ATTRIBUTE.search(tag):
            raise UnsafeContent(f"the sanitised body still holds script-like markup: "
                                f"{tag[:60]!r}")
    if len(clean) > MAX_BODY:
        raise UnsafeContent(f"the body is over {MAX_BODY} characters")
    return clean


def safe_url(value: Any) -> str | None:
    """An http(s) URL, or a path on the shop's own site ("/sale"); None otherwise
    (javascript:, data:, protocol-relative //host, …)."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if text.startswith("/") and not text.startswith("//") and "\\" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.hostname:
        return text
    return None


def _text(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    return text[:MAX_TEXT]


def render_onsite(message: Message, *, traits: Mapping[str, Any],
                  profile: Mapping[str, Any], data: Mapping[str, Any],
                  language: str | None, functions: Mapping[str, Any] | None,
                  trust: Trust | None = None) -> dict[str, Any]:
    """The `onsite` section of a message rendered for a visitor, safe to hand to the
    snippet: {language, title, body, image, button, url, form}. RenderError (bad
    template), SkipSend (a product it needs is gone), LinkHostError (a link untrusted
    input aimed elsewhere than `trust` allows) and UnsafeContent pass up."""
    rendered = message.render("onsite", traits=traits, profile=profile, data=data,
                              language=language, channel="onsite", functions=functions,
                              trust=trust)
    content = rendered.content
    out: dict[str, Any] = {"language": rendered.language}
    for name in ("title", "button"):
        if content.get(name):
            out[name] = _text(content[name])
    if content.get("body"):
        out["body"] = sanitize(str(content["body"]))
    for name in ("image", "url"):
        if content.get(name):
            url = safe_url(content[name])
            if url is None:
                raise UnsafeContent(f"{name}: not an http(s) URL or a path on the site: "
                                    f"{str(content[name])[:100]!r}")
            out[name] = url
    form = content.get("form")
    if isinstance(form, Mapping):
        out["form"] = {k: (v if isinstance(v, bool) else _text(v)) for k, v in form.items()}
    return out
