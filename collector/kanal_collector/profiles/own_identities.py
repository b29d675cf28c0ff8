"""Kanal's own events that change who a person is (folded by the profiles step).

Kanal writes these itself, after checking what the browser could not be trusted with,
so that the log says what happened and `kanal profiles rebuild` does it again:

- `Sign-up Confirmed` (a double opt-in link was confirmed; properties `channel` email or
  sms, `address`, `topic`, and `link_anonymous_id` when it was confirmed in the browser
  that submitted the form): the address becomes a verified identity — of the profile
  that already owns it, else of the submitting browser's profile when that was confirmed
  from the same browser and holds nothing but anonymous ids, else of a new profile —
  and that profile is subscribed (channel, or channel/topic). The browser's anonymous
  profile is merged into the owner only when it is anonymous: two identified profiles
  are never merged this way, so submitting somebody else's address links nothing.
- `Web Push Subscribed` (`subscription`: the `webpush` identity): attached to the
  event's userId (present only when the browser proved it with userHash), else to its
  anonymousId's profile while that holds nothing but browser ids.
- `Web Push Unsubscribed` (`subscription`), and any delivery failure marked
  `recipient_gone` (`identity_kind`, `identity`): the identity is removed.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..store import identities as store
from ..store.events import StoredEvent
from .state import set_subscription

SIGNUP_CONFIRMED = "Sign-up Confirmed"
WEBPUSH_SUBSCRIBED = "Web Push Subscribed"
WEBPUSH_UNSUBSCRIBED = "Web Push Unsubscribed"
IDENTITY_EVENTS = frozenset({SIGNUP_CONFIRMED, WEBPUSH_SUBSCRIBED, WEBPUSH_UNSUBSCRIBED})
CONTACT_OF_CHANNEL = {"email": "email", "sms": "phone"}
_BROWSER_KINDS = frozenset({"anonymous_id", "webpush"})


class Graph(Protocol):
    """What this module needs of the profiles step's identity graph."""

    conn: Any
    idents: dict[tuple[str, str], int | None]

    def lookup(self, kind: str, value: str) -> int | None: ...  # noqa: D102
    def is_identified(self, profile_id: int) -> bool: ...  # noqa: D102
    def create(self) -> int: ...  # noqa: D102
    def attach(self, profile_id: int, kind: str, value: str) -> None: ...  # noqa: D102
    def merge(self, into: int, other: int, reason: str) -> None: ...  # noqa: D102
    def state(self, profile_id: int) -> dict[str, Any]: ...  # noqa: D102
    def flush_identities(self) -> None: ...  # noqa: D102


def _props(event: StoredEvent) -> dict[str, Any]:
    props = event.body.get("properties")
    return props if isinstance(props, dict) else {}


def apply(graph: Graph, event: StoredEvent) -> int | None:
    """Fold one identity event of Kanal's own; the profile it concerns (None: none)."""
    props = _props(event)
    if event.event == SIGNUP_CONFIRMED:
        return _confirmed(graph, event, props)
    if event.event == WEBPUSH_SUBSCRIBED:
        return _subscribed(graph, event, props)
    if event.event == WEBPUSH_UNSUBSCRIBED:
        value = props.get("subscription")
        return _detach(graph, "webpush", value) if isinstance(value, str) else None
    return None


def recipient_gone(graph: Graph, event: StoredEvent) -> None:
    """A delivery failure saying the recipient is gone: remove that identity."""
    props = _props(event)
    kind, value = props.get("identity_kind"), props.get("identity")
    if props.get("recipient_gone") is True and isinstance(kind, str) \
            and isinstance(value, str):
        _detach(graph, kind, value)


def _confirmed(graph: Graph, event: StoredEvent, props: dict[str, Any]) -> int | None:
    channel = props.get("channel")
    address = props.get("address")
    kind = CONTACT_OF_CHANNEL.get(str(channel))
    if kind is None or not isinstance(address, str) or not address:
        return None
    owner = graph.lookup(kind, address)
    link = props.get("link_anonymous_id")
    browser = graph.lookup("anonymous_id", link) if isinstance(link, str) and link else None
    # Only an anonymous browser profile joins: never a second identified one.
    linkable = browser is not None and not graph.is_identified(browser)
    if owner is None:
        target = browser if linkable and browser is not None else graph.create()
        graph.attach(target, kind, address)
    else:
        target = owner
        if linkable and browser is not None and browser != owner:
            graph.merge(owner, browser, "sign-up confirmed in the same browser")
    topic = props.get("topic") if isinstance(props.get("topic"), str) else None
    ts = min(event.timestamp, event.received_at)
    set_subscription(graph.state(target), str(channel), None, True, ts, event.id)
    if topic:
        set_subscription(graph.state(target), str(channel), topic, True, ts, event.id)
    return target


def _subscribed(graph: Graph, event: StoredEvent, props: dict[str, Any]) -> int | None:
    value = props.get("subscription")
    if not isinstance(value, str) or not value:
        return None
    if event.user_id:
        target = graph.lookup("user_id", event.user_id)
        if target is None:
            target = graph.create()
            graph.attach(target, "user_id", event.user_id)
    elif event.anonymous_id:
        target = graph.lookup("anonymous_id", event.anonymous_id)
        if target is None:
            target = graph.create()
            graph.attach(target, "anonymous_id", event.anonymous_id)
        elif not _browser_owned(graph, target):
            return None  # an unverified browser may not add a recipient to a person
    else:
        return None
    current = graph.lookup("webpush", value)
    if current == target:
        return target
    if current is not None:
        _detach(graph, "webpush", value)  # a shared browser: the newest subscriber has it
    graph.attach(target, "webpush", value)
    return target


def _browser_owned(graph: Graph, profile_id: int) -> bool:
    graph.flush_identities()
    kinds = {k for k, _ in store.profile_identities(graph.conn, profile_id)}
    return kinds <= _BROWSER_KINDS


def _detach(graph: Graph, kind: str, value: str) -> int | None:
    pid = graph.lookup(kind, value)
    if pid is None:
        return None
    graph.flush_identities()
    store.delete_identity(graph.conn, kind, value)
    graph.idents[(kind, value)] = None
    return pid
