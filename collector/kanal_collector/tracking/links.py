"""Rewrite the links of an email's HTML to the click route; add the open pixel.

Only `<a href>` with an http or https URL is rewritten: mailto:, tel:, #anchors and
anything else stay as written, and so do links marked `data-kanal-track="off"` and
links that already point at the tracking host (the unsubscribe and preference links).
The recorded target is the URL a browser would follow: entities decoded (`&amp;`),
surrounding whitespace and embedded tabs/newlines removed, query string kept.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from werkzeug.urls import iri_to_uri

# An <a …> start tag; attribute values may hold ">" inside quotes.
_A_TAG = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(
    r"""(?P<lead>\shref\s*=\s*)(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'=<>`]+))""",
    re.IGNORECASE,
)
_NO_TRACK = re.compile(r"""\sdata-kanal-track\s*=\s*["']?off\b""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
# What the URL parser strips or drops (WHATWG URL: C0 controls and space at the ends,
# tab and newlines anywhere).
_EDGES = "".join(chr(c) for c in range(0x21))
_INSIDE = re.compile(r"[\t\n\r]")


def link_target(href: str) -> str | None:
    """The http(s) URL an href attribute's raw value leads to, or None for any other."""
    url = _INSIDE.sub("", html.unescape(href).strip(_EDGES))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None  # it becomes a Location header: no control characters at all
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        # Non-ASCII hosts and paths become punycode and %-escapes, as a browser sends.
        return url if url.isascii() and " " not in url else iri_to_uri(url)
    except (ValueError, UnicodeError):
        return None


def rewrite_links(source: str, tracked_url: Callable[[int], str], *,
                  skip_prefix: str | None = None) -> tuple[str, list[str]]:
    """Replace each trackable href by `tracked_url(index)`; return the HTML and the
    targets in index order."""
    targets: list[str] = []

    def tag(match: re.Match[str]) -> str:
        text = match.group(0)
        if _NO_TRACK.search(text):
            return text
        href = _HREF.search(text)
        if href is None:
            return text
        raw = next(v for v in (href.group("dq"), href.group("sq"), href.group("bare"))
                   if v is not None)
        target = link_target(raw)
        if target is None or (skip_prefix and target.startswith(skip_prefix)):
            return text
        new = html.escape(tracked_url(len(targets)), quote=True)
        targets.append(target)
        return f'{text[:href.start()]}{href.group("lead")}"{new}"{text[href.end():]}'

    return _A_TAG.sub(tag, source), targets


def add_pixel(source: str, pixel_url: str) -> str:
    """Put a 1x1 image before the last `</body>` (or at the end)."""
    img = (f'<img src="{html.escape(pixel_url, quote=True)}" width="1" height="1" alt="" '
           'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">')
    ends = list(_BODY_END.finditer(source))
    if not ends:
        return source + img
    at = ends[-1].start()
    return source[:at] + img + source[at:]
