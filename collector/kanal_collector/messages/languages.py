"""Language tags (BCP 47): which variant of a message a person gets.

Tags are compared without case and with `_` read as `-` (`sv_SE` is `sv-SE`). A
person's language picks a variant by RFC 4647 lookup — the whole tag, then shorter and
shorter prefixes (`sv-SE` → `sv`) — then a variant of the same language in another
region (`sv-FI` for `sv-SE`), then the same steps for the languages that stand for each
other (CLDR's language matching and the IANA registry's deprecated tags): `no` is
Norwegian, written as Bokmål (`nb`) or Nynorsk (`nn`), so `no` ↔ `nb`, then `nn`;
`he` was `iw`, `id` was `in`, `yi` was `ji`, `jv` was `jw`, `ro` was `mo`; `fil` and `tl`
are one language. Without a match the message's default language is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# For each primary language, the others a reader of it reads, best first.
_STANDS_IN: dict[str, tuple[str, ...]] = {
    "no": ("nb", "nn"), "nb": ("no", "nn"), "nn": ("no", "nb"),
    "he": ("iw",), "iw": ("he",), "id": ("in",), "in": ("id",), "yi": ("ji",),
    "ji": ("yi",), "jv": ("jw",), "jw": ("jv",), "ro": ("mo",), "mo": ("ro",),
    "fil": ("tl",), "tl": ("fil",),
}
_TAG = re.compile(r"^[a-z]{2,8}(-[a-z0-9]{1,8})*$")


def normalize_language(tag: str) -> str:
    """A language tag as variants are keyed: lower case, `-` separated (`sv-se`)."""
    return tag.strip().replace("_", "-").lower()


def is_language_tag(tag: str) -> bool:
    """True for something shaped like a BCP 47 tag (`en`, `sv-SE`, `zh-Hant-TW`)."""
    return bool(_TAG.match(normalize_language(tag)))


def format_language(tag: str) -> str:
    """A tag in its conventional case: `sv-SE`, `zh-Hant-TW`, `es-419`."""
    parts = normalize_language(tag).split("-")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())  # script
        else:
            out.append(part)
    return "-".join(out)


def _lookup(have: list[str], tag: str) -> str | None:
    parts = tag.split("-")
    for n in range(len(parts), 0, -1):
        candidate = "-".join(parts[:n])
        if candidate in have:
            return candidate
    primary = parts[0]
    for candidate in have:  # sorted: the same language in any other region
        if candidate.split("-")[0] == primary:
            return candidate
    return None


def choose_language(available: Iterable[str], wanted: str | None, default: str) -> str:
    """The variant among `available` for a person whose language is `wanted`, else
    `default` (see the module)."""
    have = sorted({normalize_language(a) for a in available})
    if wanted:
        tag = normalize_language(wanted)
        found = _lookup(have, tag)
        if found is not None:
            return found
        primary, _, rest = tag.partition("-")
        for other in _STANDS_IN.get(primary, ()):
            found = _lookup(have, f"{other}-{rest}" if rest else other)
            if found is not None:
                return found
    return default
