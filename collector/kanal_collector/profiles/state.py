"""One profile's state: traits (last write wins by event time) and computed values.

The state is a JSON object that can be folded from events in any order and merged
with another profile's state: every value carries the (timestamp, event id) that set
it, counters are keyed so that a merge never counts an order twice. So the live
processor, a replay by `kanal profiles rebuild` and a merge of two profiles all agree.

Layout (short keys: it is stored once per profile):

    t        traits            {name: [value, ts, event_id, trusted]}  (trusted: 1 when a
                               trusted event wrote it, 0 when not; absent in old states)
    c        claimed contacts  email/phone sent by untrusted events, never used to send
    x        invalid contacts  {email|phone: [value, ts, event_id, why]}: not valid
                               (contacts.py), kept, never an identity or a recipient
    first    first seen (ms)   last   last seen (ms)
    orders   {order key: [revenue, ts, untrusted 0/1, event id]}: per order the copy
             that counts (money.py: trusted sources first, then the first received)
    origins  {origin: events}
    eng      {channel: engagements}   sess {origin: last activity ms}
    eng_at   {channel: last engagement ms} (opens flagged as bots or proxies don't count)
    loc      {language|timezone|country: [value, ts, event_id]} from traits
    inf      the same, inferred from context (locale, timezone)
    subs     {channel or channel/topic: [subscribed, ts, event_id]}
             (an opt-in, true, only from trusted events and Kanal's own: anyone may
             unsubscribe a person, no stranger may subscribe them)
    consent  {category: [granted, ts, event_id]}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..money import copy_rank, order_id, order_revenue
from ..store.events import StoredEvent
from ..store.predict import SCORE_COLUMNS

SESSION_GAP_MS = 30 * 60 * 1000
ORDER_EVENTS = frozenset({"Order Completed"})
# Where a person engages (DESIGN.md channels): opens and clicks, replies, taps.
ENGAGEMENT_EVENTS = {
    "Email Opened": "email", "Email Link Clicked": "email",
    "SMS Link Clicked": "sms", "SMS Replied": "sms", "SMS Received": "sms",
    "Push Notification Opened": "push", "Push Notification Tapped": "push",
    "Push Notification Clicked": "push",
}
SESSION_ORIGINS = frozenset({"web", "app"})
CHANNEL_ORDER = ("email", "sms", "push", "app", "web")
CONTACT_TRAITS = frozenset({"email", "phone"})
_SUBSCRIBE_EVENTS = {"Unsubscribed": False, "Subscribed": True, "Resubscribed": True}


def new_state() -> dict[str, Any]:
    """An empty profile state."""
    return {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _newer(old: list[Any] | None, ts: int, eid: int) -> bool:
    return old is None or (ts, eid) >= (old[1], old[2])


def _put(state: dict[str, Any], section: str, name: str, value: Any, ts: int, eid: int,
         *extra: Any) -> None:
    entries = state.setdefault(section, {})
    if _newer(entries.get(name), ts, eid):
        entries[name] = [value, ts, eid, *extra]


def _rank(entry: list[Any]) -> tuple[int, int]:
    """The copy rank (money.copy_rank) an order entry was kept with; entries kept before
    ranks were recorded rank as an untrusted copy received first."""
    return (int(entry[2]), int(entry[3])) if len(entry) >= 4 else (1, -1)


def _language(locale: str) -> str | None:
    part = locale.replace("_", "-").split("-")[0].strip().lower()
    return part if 2 <= len(part) <= 3 and part.isalpha() else None


def _region(locale: str) -> str | None:
    parts = locale.replace("_", "-").split("-")
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            return part.upper()
    return None


def _country(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    return text.upper() if len(text) == 2 else text


def apply_event(state: dict[str, Any], event: StoredEvent, *, trusted: bool,
                invalid: Mapping[str, str] | None = None) -> None:
    """Fold one event into a profile's state. `invalid` ({trait: why}) names the email
    and phone traits that aren't valid (contacts.py): they are kept apart, as invalid
    traits, and never used to send."""
    # A client may not write into the future: a timestamp is capped at receipt.
    ts = min(event.timestamp, event.received_at)
    eid = event.id
    body = event.body
    state["first"] = min(state.get("first", ts), ts)
    state["last"] = max(state.get("last", ts), ts)
    origins = state.setdefault("origins", {})
    origins[event.origin] = origins.get(event.origin, 0) + 1
    props = _mapping(body.get("properties"))
    context = _mapping(body.get("context"))

    traits: dict[str, Any] = {}
    if isinstance(context.get("traits"), dict):
        traits.update(context["traits"])
    if event.type == "identify" and isinstance(body.get("traits"), dict):
        traits.update(body["traits"])
    for name, value in traits.items():
        if invalid and name in invalid:
            entries = state.setdefault("x", {})
            if _newer(entries.get(name), ts, eid):
                entries[name] = [value, ts, eid, invalid[name]]
            continue
        if name in CONTACT_TRAITS and not trusted:
            _put(state, "c", name, value, ts, eid)
        else:
            _put(state, "t", name, value, ts, eid, int(trusted))
    _locale_and_subscriptions(state, traits, context, ts, eid, trusted)

    if event.type == "track" and event.event:
        name = event.event
        if name in ORDER_EVENTS:
            oid = order_id(props)
            key = f"o:{oid}" if oid is not None else f"m:{event.id}"
            orders = state.setdefault("orders", {})
            rank = copy_rank(event.key_kind, event.id)
            if key not in orders or rank < _rank(orders[key]):
                orders[key] = [order_revenue(props), ts, *rank]
        channel = ENGAGEMENT_EVENTS.get(name)
        if channel:
            eng = state.setdefault("eng", {})
            eng[channel] = eng.get(channel, 0) + 1
            if props.get("bot") is not True:
                last = state.setdefault("eng_at", {})
                last[channel] = max(last.get(channel, ts), ts)
        subscribed = _SUBSCRIBE_EVENTS.get(name)
        if subscribed is not None:
            channel_name = props.get("channel") if isinstance(props.get("channel"), str) else None
            key = (channel_name or "email").lower()
            topic = props.get("topic")
            if isinstance(topic, str) and topic:
                key = f"{key}/{topic}"
            if trusted or not subscribed:
                _put(state, "subs", key, subscribed, ts, eid)
    if event.origin in SESSION_ORIGINS and event.type in ("page", "screen", "track"):
        sess = state.setdefault("sess", {})
        last = sess.get(event.origin)
        if last is None or abs(ts - last) > SESSION_GAP_MS:
            eng = state.setdefault("eng", {})
            eng[event.origin] = eng.get(event.origin, 0) + 1
        sess[event.origin] = ts if last is None else max(last, ts)


def set_subscription(state: dict[str, Any], channel: str, topic: str | None,
                     subscribed: bool, ts: int, eid: int) -> None:
    """Record a subscription change of Kanal's own (a confirmed sign-up), by event time."""
    key = f"{channel.lower()}/{topic}" if topic else channel.lower()
    _put(state, "subs", key, subscribed, ts, eid)


def _locale_and_subscriptions(state: dict[str, Any], traits: dict[str, Any],
                              context: dict[str, Any], ts: int, eid: int,
                              trusted: bool) -> None:
    language = traits.get("language") or traits.get("locale")
    if isinstance(language, str) and _language(language):
        _put(state, "loc", "language", _language(language), ts, eid)
    if isinstance(traits.get("timezone"), str) and traits["timezone"]:
        _put(state, "loc", "timezone", traits["timezone"], ts, eid)
    address = traits.get("address")
    country = _country(address.get("country")) if isinstance(address, dict) else None
    country = country or _country(traits.get("country"))
    if country:
        _put(state, "loc", "country", country, ts, eid)
    locale = context.get("locale")
    if isinstance(locale, str):
        if _language(locale):
            _put(state, "inf", "language", _language(locale), ts, eid)
        if _region(locale):
            _put(state, "inf", "country", _region(locale), ts, eid)
    if isinstance(context.get("timezone"), str) and context["timezone"]:
        _put(state, "inf", "timezone", context["timezone"], ts, eid)

    subs = traits.get("subscriptions")
    if isinstance(subs, dict):
        for channel, value in subs.items():
            if isinstance(value, bool) and (trusted or not value):
                _put(state, "subs", str(channel).lower(), value, ts, eid)
            elif isinstance(value, dict):
                for topic, flag in value.items():
                    if isinstance(flag, bool) and (trusted or not flag):
                        _put(state, "subs", f"{str(channel).lower()}/{topic}", flag, ts, eid)
    if isinstance(traits.get("unsubscribed"), bool) and (trusted or traits["unsubscribed"]):
        _put(state, "subs", "email", not traits["unsubscribed"], ts, eid)

    consent: dict[str, Any] = {}
    if isinstance(traits.get("consent"), dict):
        consent.update(traits["consent"])
    ctx_consent = context.get("consent")
    if isinstance(ctx_consent, dict) and isinstance(ctx_consent.get("categoryPreferences"), dict):
        consent.update(ctx_consent["categoryPreferences"])
    for category, granted in consent.items():
        if isinstance(granted, bool):
            _put(state, "consent", str(category), granted, ts, eid)


def merge_states(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The state of one person known as two profiles until now."""
    out: dict[str, Any] = {}
    for key in ("first",):
        values = [s[key] for s in (a, b) if key in s]
        if values:
            out[key] = min(values)
    if "last" in a or "last" in b:
        out["last"] = max(s["last"] for s in (a, b) if "last" in s)
    for section in ("t", "c", "x", "loc", "inf", "subs", "consent"):
        merged: dict[str, Any] = {}
        for s in (a, b):
            for name, entry in s.get(section, {}).items():
                if _newer(merged.get(name), entry[1], entry[2]):
                    merged[name] = entry
        if merged:
            out[section] = merged
    for section in ("origins", "eng"):
        counts: dict[str, int] = {}
        for s in (a, b):
            for name, n in s.get(section, {}).items():
                counts[name] = counts.get(name, 0) + n
        if counts:
            out[section] = counts
    orders: dict[str, list[Any]] = {}
    for s in (a, b):
        for key, entry in s.get("orders", {}).items():
            if key not in orders or _rank(entry) < _rank(orders[key]):
                orders[key] = entry
    if orders:
        out["orders"] = orders
    for section in ("sess", "eng_at"):
        latest: dict[str, int] = {}
        for s in (a, b):
            for name, last in s.get(section, {}).items():
                latest[name] = max(latest.get(name, last), last)
        if latest:
            out[section] = latest
    return out


SCORES = tuple(SCORE_COLUMNS.values())
"""Computed values that come from the latest predictive fit (store/predict.py), not from
the state; None for a person the fit did not score."""


def computed(state: dict[str, Any], scores: Mapping[str, Any] | None = None, *,
             only: Iterable[str] | None = None) -> dict[str, Any]:
    """The computed values of a profile, as the API and segments see them (ms times).

    `scores` are the person's predictive scores (store.predict.computed_scores). With
    `only` (keys of the full answer), just those values: the rest are not worked out
    (segments read a few values of every profile they test).
    """
    if only is None:
        out: dict[str, Any] = {}
        for group in _GROUPS:
            out.update(group(state, scores))
        return out
    wanted = set(only)
    out = computer(wanted)(state, scores)
    return {key: out[key] for key in wanted}


def computer(keys: Iterable[str]) -> Callable[[dict[str, Any], Scores], dict[str, Any]]:
    """What works out the computed values `keys` of a state (and those worked out with
    them), the work picked once for the many profiles a segment tests."""
    wanted = set(keys)
    unknown = wanted - _GROUP_OF.keys()
    if unknown:
        raise KeyError(f"no computed value {sorted(unknown)[0]!r}")
    groups = tuple(dict.fromkeys(_GROUP_OF[key] for key in sorted(wanted)))

    def values(state: dict[str, Any], scores: Scores = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for group in groups:
            out.update(group(state, scores))
        return out
    return values


Scores = Mapping[str, Any] | None


def _seen(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    return {"firstSeen": state.get("first"), "lastSeen": state.get("last")}


def _orders(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    orders = state.get("orders", {})
    revenue = round(sum(entry[0] for entry in orders.values()), 2)
    count = len(orders)
    return {
        "orders": count,
        "revenue": revenue,
        "averageOrderValue": round(revenue / count, 2) if count else None,
        "lastOrderAt": max((e[1] for e in orders.values()), default=None),
    }


def _origins(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    return {"origins": sorted(state.get("origins", {}))}


def _engagement(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    eng = state.get("eng", {})
    # The channel with the most engagements; a tie goes to the one first in CHANNEL_ORDER.
    preferred = None
    best = 0
    for channel in CHANNEL_ORDER:
        n = eng.get(channel, 0)
        if n > best:
            preferred, best = channel, n
    return {"engagement": dict(sorted(eng.items())), "preferredChannel": preferred}


def _places(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    loc = state.get("loc", {})
    inf = state.get("inf", {})

    def place(name: str) -> Any:
        entry = loc.get(name) or inf.get(name)
        return None if entry is None else entry[0]

    return {"language": place("language"), "timezone": place("timezone"),
            "country": place("country")}


def _subscriptions(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    subscriptions: dict[str, Any] = {}
    subscribed_at: dict[str, int] = {}
    for key, entry in sorted(state.get("subs", {}).items()):
        channel, _sep, topic = key.partition("/")
        slot = subscriptions.setdefault(channel, {"subscribed": None, "topics": {}})
        if topic:
            slot["topics"][topic] = entry[0]
        else:
            slot["subscribed"] = entry[0]
            if entry[0] is True:
                subscribed_at[channel] = entry[1]
    return {"subscriptions": subscriptions, "subscribedAt": subscribed_at}


def _engaged_at(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    return {"lastEngagedAt": dict(sorted(state.get("eng_at", {}).items())),
            "lastEmailEngagedAt": state.get("eng_at", {}).get("email")}


def _consent(state: dict[str, Any], _: Scores) -> dict[str, Any]:
    return {"consent": {k: v[0] for k, v in sorted(state.get("consent", {}).items())}}


def _scores(_: dict[str, Any], scores: Scores) -> dict[str, Any]:
    return {name: (scores or {}).get(name) for name in SCORES}


_GROUPS: tuple[Callable[[dict[str, Any], Scores], dict[str, Any]], ...] = (
    _seen, _orders, _origins, _engagement, _places, _subscriptions, _engaged_at, _consent,
    _scores)
"""The computed values, in groups worked out together (one pass over a part of the
state each), in the order of the full answer."""

_GROUP_OF = {key: group for group in _GROUPS for key in group({}, None)}
"""Each computed value's group."""


def traits_of(state: dict[str, Any]) -> dict[str, Any]:
    """Current trait values (trusted ones only)."""
    return {name: entry[0] for name, entry in sorted(state.get("t", {}).items())}


def trusted_traits(state: dict[str, Any]) -> set[str]:
    """The traits last written by trusted events (a secret key, a valid userHash, an
    import, Kanal's own): links in messages may be aimed by them."""
    return {name for name, entry in state.get("t", {}).items()
            if len(entry) > 3 and entry[3] == 1}


def claimed_of(state: dict[str, Any]) -> dict[str, Any]:
    """Email and phone sent by untrusted events: shown, never used to send."""
    return {name: entry[0] for name, entry in sorted(state.get("c", {}).items())}


def invalid_of(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Email and phone traits whose latest value wasn't valid: {trait: {value, reason,
    at}} (a valid value set later supersedes them)."""
    out: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(state.get("x", {}).items()):
        valid = [e for s in ("t", "c") if (e := state.get(s, {}).get(name)) is not None]
        if any((e[1], e[2]) > (entry[1], entry[2]) for e in valid):
            continue
        out[name] = {"value": entry[0], "reason": entry[3], "at": entry[1]}
    return out


def trait_times(state: dict[str, Any]) -> dict[str, int]:
    """When each trait was last set (event time, ms)."""
    return {name: entry[1] for name, entry in sorted(state.get("t", {}).items())}
