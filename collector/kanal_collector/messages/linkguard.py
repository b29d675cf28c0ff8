"""Untrusted data can't aim a link (issue 13).

Anyone with the public key (it is in every page) can send an event for a known user id
that starts a journey, and its properties reach the message's templates. A link whose
host such data chose must point at a host the shop allows: `[tracking] link_hosts`
(default: the host of `[server] public_url`), the tracking host, or a host that trusted
data of the same message names (a trusted trait, the journey step's own `data`). Links
written in the template itself are the shop's and are never checked.

Trusted data is: an event sent with a secret key or a valid userHash, Kanal's own
events, imports, and traits last written by such events. A journey run keeps whether
its trigger was trusted (journey_runs.trusted); enqueue stores which `data` keys came
from untrusted input (outbox.untrusted).

For each rendered field that read untrusted data (taint.py), every link in it is found
— `href`, `src` and `action` attributes in HTML, `http(s)://` and `www.` URLs in any
text — and when an expression's output wrote any part of it up to the end of its host
(`https://{{ x }}`, `https://shop.example{{ x }}` with `x` = `@evil.example`), its host
must be allowed. Otherwise the message fails, naming the host.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import RenderError
from .taint import spans

_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`]+|(?<![\w/])//[^\s<>\"'`/]+")
_ATTRIBUTE = re.compile(
    r"""(?is)\b(?:href|src|action|formaction|background|poster)\s*=\s*"""
    r"""(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""")
_NETLOC_END = re.compile(r"[/?#\\]")


@dataclass(frozen=True)
class LinkPolicy:
    """The hosts links built from untrusted data may point at."""

    hosts: tuple[str, ...] = ()
    """Host names (lower case); `*.shop.example` allows its subdomains (not itself)."""

    def allows(self, host: str, trusted_hosts: Collection[str] = ()) -> bool:
        """Whether `host` is allowed (or named by trusted data of the message)."""
        host = host.lower().rstrip(".")
        if host in trusted_hosts:
            return True
        for allowed in self.hosts:
            if allowed.startswith("*."):
                if host.endswith(allowed[1:]):
                    return True
            elif host == allowed:
                return True
        return False


def host_of(url: str) -> str | None:
    """The host a link goes to (None: a relative link, or not a web link)."""
    text = url.strip()
    if text.lower().startswith("www."):
        text = "http://" + text
    elif text.startswith("//"):
        text = "http:" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    try:
        host = parts.hostname
    except ValueError:
        return None
    return host.lower() if host else None


def _netloc_end(url: str) -> int:
    """Where the part of a link that decides its host ends (after scheme and netloc)."""
    start = url.find("//")
    start = 0 if start < 0 else start + 2
    found = _NETLOC_END.search(url, start)
    return len(url) if found is None else found.start()


def _links(text: str, html: bool) -> Iterator[tuple[int, str]]:
    """(start, link) of every link in `text`."""
    if html:
        for match in _ATTRIBUTE.finditer(text):
            group = next(i for i in (1, 2, 3) if match.group(i) is not None)
            yield match.start(group), match.group(group)
    for match in _URL.finditer(text):
        yield match.start(), match.group(0)


def aimed_hosts(marked: str, *, html: bool) -> list[str]:
    """The hosts of the links in a marked render whose host part data wrote."""
    text, by_data = spans(marked)
    out = []
    for start, link in _links(text, html):
        end = start + _netloc_end(link)
        if not any(by_data[start:end]):
            continue  # the template wrote the whole scheme and host
        host = host_of(link.replace("&amp;", "&"))
        if host is not None and host not in out:
            out.append(host)
    return out


def hosts_in(values: Iterable[Any]) -> set[str]:
    """The hosts of the web links in trusted values (strings, nested anywhere)."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            for _, link in _links(value, html=False):
                host = host_of(link)
                if host:
                    found.add(host)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return found


class LinkHostError(RenderError):
    """A link that untrusted data aimed at a host outside `[tracking] link_hosts`."""


def check(marked: str, *, html: bool, policy: LinkPolicy, trusted_hosts: Collection[str],
          where: str) -> None:
    """Raise LinkHostError for the first link data aimed at a host not allowed."""
    for host in aimed_hosts(marked, html=html):
        if not policy.allows(host, trusted_hosts):
            raise LinkHostError(
                f"{where}: a link to {host} came from untrusted data (an event or trait "
                f"not sent with a secret key), and {host} is not in [tracking] link_hosts")
