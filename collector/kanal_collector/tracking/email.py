"""Send-time preparation of a tracked email: links, pixel and List-Unsubscribe headers.

The dispatcher calls `prepare_email` just before it hands an email to the channel
(the `before_send` step), with the outbox row's id. It records the send and its link
targets in the same database, so the tracking routes can later redirect only to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..store import tracking as store
from ..store.connection import Connection
from ..store.db import transaction
from . import tokens
from .keys import load_keys
from .links import add_pixel, rewrite_links


def click_url(base_url: str, key: bytes, outbox_id: int, index: int) -> str:
    """The tracked URL of link `index` of an outbox row."""
    return f"{base_url}/c/{tokens.make_token(key, tokens.CLICK, outbox_id, index)}"


def open_url(base_url: str, key: bytes, outbox_id: int) -> str:
    """The open pixel's URL for an outbox row."""
    return f"{base_url}/o/{tokens.make_token(key, tokens.OPEN, outbox_id)}.gif"


def unsubscribe_url(base_url: str, key: bytes, outbox_id: int) -> str:
    """The one-click unsubscribe URL (RFC 8058) for an outbox row."""
    return f"{base_url}/u/{tokens.make_token(key, tokens.UNSUBSCRIBE, outbox_id)}"


def preferences_url(base_url: str, key: bytes, profile_id: int) -> str:
    """The preference page of a profile (a capability URL: whoever has it may use it)."""
    return f"{base_url}/p/{tokens.make_token(key, tokens.PREFERENCES, profile_id)}"


UNSUBSCRIBE_PLACEHOLDER = "%%unsubscribe_url%%"
"""Written in a message's HTML, replaced by the unsubscribe page's URL at send time."""
PREFERENCES_PLACEHOLDER = "%%preferences_url%%"
"""Written in a message's HTML, replaced by the preference page's URL at send time."""


@dataclass(frozen=True)
class PreparedEmail:
    """A tracked email's parts after `prepare_message`."""

    html: str | None
    text: str | None
    headers: dict[str, str]


def prepare_message(
    conn: Connection,
    *,
    outbox_id: int,
    profile_id: int,
    message: str | None,
    journey: str | None,
    html: str | None,
    base_url: str,
    now: float,
    text: str | None = None,
    channel: str = "email",
    topic: str | None = None,
    marketing: bool = True,
    mailto: str | None = None,
    keys: Sequence[bytes] = (),
    track_opens: bool = True,
    track_clicks: bool = True,
) -> PreparedEmail:
    """Rewrite links, add the open pixel, fill in the placeholders; add the headers.

    Records the send (profile, message, journey, channel, topic, time) and every link
    target for `outbox_id`; runs in the caller's transaction if one is open, else in
    its own. Links and the pixel are the HTML's; `%%unsubscribe_url%%` and
    `%%preferences_url%%` are filled in in both parts. Every marketing email gets
    `List-Unsubscribe` (the one-click URL, and `mailto` when given), whatever its
    format — HTML, text or both — and, when `base_url` is https, `List-Unsubscribe-Post:
    List-Unsubscribe=One-Click` (RFC 8058 requires an HTTPS URI for one-click).
    `keys` are the config's signing keys (newest first); empty: the database's.
    `now` is seconds since the epoch (the clock's).
    """
    if outbox_id < 0 or profile_id < 0:
        raise ValueError("outbox_id and profile_id must not be negative")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url: must start with http:// or https://, not {base_url!r}")
    base_url = base_url.rstrip("/")
    now_ms = int(now * 1000)
    key = (list(keys) or load_keys(conn, (), now_ms))[0]

    def fill(part: str) -> str:
        part = part.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url(base_url, key, outbox_id))
        return part.replace(PREFERENCES_PLACEHOLDER, preferences_url(base_url, key, profile_id))

    out = None if html is None else fill(html)
    targets: list[str] = []
    if out is not None and track_clicks:
        out, targets = rewrite_links(
            out, lambda i: click_url(base_url, key, outbox_id, i), skip_prefix=base_url + "/")
        if len(targets) > tokens.MAX_LINKS + 1:
            raise ValueError(f"html: more than {tokens.MAX_LINKS + 1} links to track")
    if out is not None and track_opens:
        out = add_pixel(out, open_url(base_url, key, outbox_id))

    send = store.SendInfo(outbox_id, profile_id, message, journey, channel, topic, now_ms)
    if conn.in_transaction:
        store.record_send(conn, send, targets)
    else:
        with transaction(conn):
            store.record_send(conn, send, targets)

    headers: dict[str, str] = {}
    if marketing:
        targets_header = [f"<{unsubscribe_url(base_url, key, outbox_id)}>"]
        if mailto:
            subject = quote(f"unsubscribe {outbox_id}")
            targets_header.append(f"<mailto:{mailto}?subject={subject}>")
        headers["List-Unsubscribe"] = ", ".join(targets_header)
        if base_url.startswith("https://"):
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return PreparedEmail(out, None if text is None else fill(text), headers)


def prepare_email(conn: Connection, *, html: str,
                  **kwargs: Any) -> tuple[str, dict[str, str]]:
    """`prepare_message` for an HTML email: (html, extra headers)."""
    prepared = prepare_message(conn, html=html, **kwargs)
    return prepared.html or "", prepared.headers
