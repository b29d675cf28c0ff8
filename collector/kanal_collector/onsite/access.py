"""Who is asking: the browser behind an on-site request, and what it may see.

A browser names itself with the source's public key, its anonymous id, and (on a signed-in
customer's page) a userId with `userHash`. Content for a person — their traits, their
cart, messages a journey queued for them — goes only to:

- a verified user: the userId with a valid userHash (the shop's backend vouched), or
- the browser's own anonymous profile: the profile of its anonymousId while that profile
  holds nothing but browser ids (anonymous ids, push subscriptions made from it).

Anything else — a userId claimed without a hash, or an anonymousId that an unverified
identify linked to somebody's identified profile — is treated as a stranger: no profile,
nothing personal (a claim can link a visitor to a userId, so it must not open that
person's data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Unauthorized
from ..ingest.auth import KeyCache
from ..ingest.enrich import verify_user_hash
from ..profiles.identity import clean_id
from ..store import identities as identity_store
from ..store.connection import Connection

BROWSER_KINDS = frozenset({"anonymous_id", "webpush"})
"""Identities a browser makes by itself; a profile holding only these is its own."""
MAX_ID = 200


@dataclass(frozen=True)
class Visitor:
    """The browser of one request."""

    source_id: int
    anonymous_id: str | None
    user_id: str | None
    verified: bool
    """A userId with a valid userHash."""
    profile_id: int | None
    """The profile it may see personal content of, or None (a stranger)."""

    @property
    def key(self) -> str:
        """Who it is for stable choices (a campaign's arm): the profile, else the browser."""
        if self.profile_id is not None:
            return f"p{self.profile_id}"
        return f"a{self.anonymous_id or ''}"


def _id(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_ID:
        return None
    return clean_id(value)


def visitor(conn: Connection, keys: KeyCache, body: dict[str, Any]) -> Visitor:
    """The browser a request body speaks for: `k` (public key), `a` (anonymousId), `u`
    (userId), `x` (userHash). Unauthorized for a missing, unknown or admin key."""
    key = body.get("k")
    info = keys.get(key) if isinstance(key, str) and key else None
    if info is None or info.kind == "admin" or not info.source_id:
        raise Unauthorized("a public key of a source is required (`k`)", code="unknown_key")
    anonymous_id = _id(body.get("a"))
    user_id = _id(body.get("u"))
    verified = bool(user_id) and verify_user_hash(
        str(user_id), body.get("x"), keys.secrets(info.source_id))
    profile_id: int | None = None
    if verified:
        profile_id = identity_store.identity_profile(conn, "user_id", str(user_id))
    elif anonymous_id:
        found = identity_store.identity_profile(conn, "anonymous_id", anonymous_id)
        if found is not None and browser_owned(conn, found):
            profile_id = found
    return Visitor(info.source_id, anonymous_id, user_id if verified else None, verified,
                   profile_id)


def browser_owned(conn: Connection, profile_id: int) -> bool:
    """True when a profile holds nothing but browser ids (see BROWSER_KINDS)."""
    kinds = {k for k, _ in identity_store.profile_identities(conn, profile_id)}
    return kinds <= BROWSER_KINDS
