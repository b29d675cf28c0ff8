"""Google Merchant Center product feeds: RSS 2.0 and Atom 1.0 with the `g:` namespace.

    <rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>
      <item><g:id>…</g:id><title>…</title><link>…</link><g:price>15.00 USD</g:price>…</item>
    </channel></rss>

    <feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">
      <entry><g:id>…</g:id><title>…</title><link href="…"/><g:price>…</g:price>…</entry>
    </feed>

Each `<item>` / `<entry>` becomes one row (with the line it starts on): its `g:`
children by their names (`g:title` wins over `<title>`), RSS `<title>`, `<link>` and
`<description>`, Atom `<title>` and `<link href>`. A nested `g:` element (`g:shipping`)
becomes a mapping, a repeated one (`g:additional_image_link`) a list.

Parsed safely, as a stream: defusedxml refuses DTDs, entity declarations and external
references (no "billion laughs", no reading local files), whatever the XML library's
own defaults are.
"""

from __future__ import annotations

import xml.sax
from collections.abc import Iterator
from typing import IO, Any
from xml.sax.expatreader import ExpatLocator
from xml.sax.handler import ContentHandler, feature_namespaces
from xml.sax.xmlreader import AttributesNSImpl

import defusedxml.sax
from defusedxml import DefusedXmlException

from .errors import FeedError

G_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
_PLAIN = ("title", "link", "description")
_CHUNK = 64 * 1024


class _Handler(ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.root: str | None = None
        self._depth = 0
        self._item_depth: int | None = None
        self._line = 0
        self._g: dict[str, Any] = {}
        self._plain: dict[str, Any] = {}
        self._stack: list[tuple[str | None, str, dict[str, Any]]] = []
        self._text: list[str] = []

    def _line_now(self) -> int:
        locator = getattr(self, "_locator", None)
        return int(locator.getLineNumber()) if locator is not None else 0

    def startElementNS(self, name: tuple[str | None, str], qname: str | None,  # noqa: N802
                       attrs: AttributesNSImpl) -> None:
        ns, local = name
        self._depth += 1
        if self.root is None:
            self.root = local
            if local not in ("rss", "feed"):
                raise FeedError(f"line {self._line_now()}: <{local}> is not an RSS 2.0 "
                                "<rss> or Atom <feed> product feed")
        if self._item_depth is None:
            if local in ("item", "entry") and ns in (None, "", ATOM_NS):
                self._item_depth = self._depth
                self._line = self._line_now()
                self._g, self._plain = {}, {}
            return
        self._text = []
        if ns == ATOM_NS and local == "link" and self._depth == self._item_depth + 1:
            rel = attrs.get((None, "rel"), "alternate")
            href = attrs.get((None, "href"))
            if href and rel == "alternate":
                self._plain.setdefault("link", href)
        self._stack.append((ns, local, {}))

    def characters(self, content: str) -> None:
        if self._item_depth is not None:
            self._text.append(content)

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:  # noqa: N802
        self._depth -= 1
        if self._item_depth is None:
            return
        if self._depth < self._item_depth:
            row = {**{f"g:{k}": v for k, v in self._g.items()},
                   **{k: v for k, v in self._plain.items() if k not in self._g}}
            self.rows.append((self._line, row))
            self._item_depth = None
            return
        ns, local, children = self._stack.pop()
        text = "".join(self._text).strip()
        self._text = []
        value: Any = children if children else text
        if self._stack:  # a child of a nested element (g:shipping/g:price)
            parent = self._stack[-1][2]
            _put(parent, local, value)
            return
        if ns == G_NS:
            _put(self._g, local, value)
        elif local in _PLAIN and ns in (None, "", ATOM_NS) and isinstance(value, str) \
                and value:
            self._plain.setdefault(local, value)


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value in ("", {}):
        return
    if key in target:
        current = target[key]
        target[key] = [*current, value] if isinstance(current, list) else [current, value]
    else:
        target[key] = value


def read_merchant(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) for every item of a Merchant Center RSS or Atom feed, as it is read.

    FeedError for XML that is not well formed (with its line), not a feed, or that
    declares a DTD or entities.
    """
    handler = _Handler()
    parser = defusedxml.sax.make_parser()
    parser.forbid_dtd = True
    parser.forbid_entities = True
    parser.forbid_external = True
    parser.setFeature(feature_namespaces, True)
    parser.setContentHandler(handler)
    # parse() would set the locator; feeding chunks (a streamed feed) doesn't.
    handler.setDocumentLocator(ExpatLocator(parser))
    try:
        while chunk := stream.read(_CHUNK):
            parser.feed(chunk)
            yield from handler.rows
            handler.rows.clear()
        parser.close()
    except xml.sax.SAXParseException as exc:
        raise FeedError(f"line {exc.getLineNumber()}: not well-formed XML: "
                        f"{exc.getMessage()}") from None
    except DefusedXmlException as exc:
        raise FeedError(f"refused: the feed declares a DTD or entities ({exc})") from None
    yield from handler.rows
    if handler.root is None:
        raise FeedError("empty: no XML element")
