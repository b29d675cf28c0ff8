"""The languages of the unsubscribe and preference pages: one catalog file per language
in `locales/` (TOML), so a native speaker can correct them in one place.

    en  English (the fallback)   sv  Swedish   da  Danish   nb  Norwegian bokmål
    fi  Finnish                  ru  Russian

A page speaks the person's language (the profile's computed language), else the best
language of the browser's Accept-Language, else English, matched as message variants
are (messages/languages.py): Norwegian written `no` or `nn` gets bokmål. Every catalog
must have exactly the keys English has: a test checks.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

from ..messages.languages import choose_language

LOCALES = Path(__file__).with_name("locales")
FALLBACK = "en"


@cache
def catalogs() -> dict[str, dict[str, Any]]:
    """Every catalog, by language code (the file's stem)."""
    out = {}
    for path in sorted(LOCALES.glob("*.toml")):
        with path.open("rb") as f:
            out[path.stem] = tomllib.load(f)
    return out


def _accepted(header: str | None) -> list[str]:
    """The languages of an Accept-Language header, best first."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, i, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose(language: str | None, accept_language: str | None = None) -> str:
    """The catalog for a person's language, else the browser's, else English (BCP 47
    matching as messages use it: `sv-SE` reads `sv`, `no` and `nn` read `nb`)."""
    known = catalogs()
    for tag in ([language] if language else []) + _accepted(accept_language):
        found = choose_language(known, tag, "")
        if found:
            return found
    return FALLBACK


@dataclass(frozen=True)
class Words:
    """One language's strings, HTML-escaped where they are filled in."""

    language: str

    def _table(self, name: str) -> dict[str, str]:
        table: dict[str, str] = catalogs()[self.language][name]
        return table

    def text(self, key: str, **values: str) -> str:
        """A page string with `values` (already HTML) filled in, itself escaped."""
        return escape(self._table("pages")[key]).format(**values)

    def all_marketing(self, channel: str) -> str:
        """"all marketing email" for a channel (kind), as HTML."""
        table = self._table("all")
        phrase = table.get(channel, table["other"])
        return escape(phrase).format(channel=escape(channel))

    def topic(self, name: str) -> str:
        """A topic's name as the language quotes it, as HTML."""
        return escape(self._table("pages")["topic"]).format(topic=escape(name))


def words(language: str | None, accept_language: str | None = None) -> Words:
    """The strings for a person (their language, the browser's, else English)."""
    return Words(choose(language, accept_language))
