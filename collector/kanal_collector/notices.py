"""What `kanal serve` says when it starts, about sends a shop may be surprised by.

- Journeys that refused trigger events in the last day because they were history
  (too old for the trigger's `max_age`, from before the journey was first enabled, or
  imported without `--trigger`): a stricter default may stop sends a shop relied on.
- Sends left in doubt by a crash (the provider may or may not have them): someone has
  to check with the provider, then `kanal outbox retry ID` or leave them.
- Journeys that send marketing SMS to people in their runs who have no SMS opt-in,
  when marketing SMS needs one (`[messages] opt_in`, by default).

The dashboard shows the sends in doubt too (`in_doubt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .journeys.definition import parse_journey
from .journeys.errors import JourneyError
from .journeys.gate import BEFORE_ENABLED, IMPORTED, TOO_OLD
from .journeys.model import Journey
from .journeys.references import PREFERRED
from .messages.eligibility import BUILTIN_CHANNELS, ChannelInfo, Policy
from .profiles.state import computed
from .store import journeys as journey_store
from .store import outbox as outbox_store
from .store import profiles as profile_store
from .store.connection import Connection
from .store.db import transaction

DAY_MS = 86_400_000
KEEP_REFUSALS_MS = 30 * DAY_MS
"""How long the tally of refused trigger events is kept."""
_SHOWN = 10


def startup_notices(conn: Connection, *, now_ms: int, policy: Policy,
                    channels: Mapping[str, Any] | None = None) -> list[str]:
    """The lines `kanal serve` prints at start (none when all is well)."""
    with transaction(conn):
        journey_store.prune_refusals(conn, now_ms - KEEP_REFUSALS_MS)
    return [*history_notices(conn, now_ms), *in_doubt_notices(conn),
            *opt_in_notices(conn, policy, channels)]


def history_notices(conn: Connection, now_ms: int) -> list[str]:
    """Journeys that refused trigger events as history in the last day."""
    tally = journey_store.refusals_since(conn, now_ms - DAY_MS)
    out = []
    for name in sorted({j for j, _ in tally}):
        parts = []
        for code, words in ((TOO_OLD, "too old for the trigger's max_age"),
                            (BEFORE_ENABLED, "from before the journey was first enabled"),
                            (IMPORTED, "imported without --trigger")):
            n = tally.get((name, code), 0)
            if n:
                parts.append(f"{n} {words}")
        if parts:
            out.append(f"journey {name}: trigger events refused as history in the last "
                       f"day: {'; '.join(parts)} (`kanal journeys why USER {name}` "
                       "explains each; docs/journeys.md: History is not now)")
    return out


def in_doubt_notices(conn: Connection) -> list[str]:
    """Sends a crash left in doubt, by outbox id."""
    count = outbox_store.counts(conn).get("in_doubt", 0)
    if not count:
        return []
    ids = [str(r.id) for r in outbox_store.listing(conn, state="in_doubt", limit=_SHOWN)]
    more = f" and {count - len(ids)} more" if count > len(ids) else ""
    return [f"{count} send(s) are in doubt (outbox {', '.join(ids)}{more}): the process "
            "stopped between the provider call and recording it. Check with the provider; "
            "`kanal outbox retry ID` sends one again, `kanal outbox --state in_doubt` lists "
            "them"]


def _sms_channels(channels: Mapping[str, Any] | None) -> dict[str, ChannelInfo]:
    if not channels:
        return {n: ChannelInfo(n, k, i) for n, (k, i) in BUILTIN_CHANNELS.items()
                if k == "sms"}
    return {n: ChannelInfo(n, str(c.kind), c.recipient_identity)
            for n, c in channels.items() if str(c.kind) == "sms"}


def _marketing_sms_steps(journey: Journey, sms: Mapping[str, ChannelInfo],
                         policy: Policy) -> list[str]:
    steps = []
    for step in journey.sends():
        if str(step.spec.get("kind") or journey.kind) != "marketing":
            continue
        names = [step.spec.get("channel"), *step.spec.get("fallbacks", [])]
        if any((n in sms and policy.needs_opt_in(sms[n]))
               or (n == PREFERRED and any(policy.needs_opt_in(i) for i in sms.values()))
               for n in names):
            steps.append(step.id)
    return steps


def opt_in_notices(conn: Connection, policy: Policy,
                   channels: Mapping[str, Any] | None) -> list[str]:
    """Enabled journeys sending marketing SMS to people in their runs without an opt-in."""
    sms = _sms_channels(channels)
    if not sms or not any(policy.needs_opt_in(i) for i in sms.values()):
        return []
    out = []
    for name, version, enabled in journey_store.current(conn):
        text = journey_store.version_text(conn, name, version)
        if not enabled or text is None:
            continue
        try:
            journey = parse_journey(text, source=f"{name} v{version}", name=name,
                                    strict=False)
        except JourneyError:
            continue
        steps = _marketing_sms_steps(journey, sms, policy)
        if not steps:
            continue
        people = journey_store.active_profiles(conn, name)
        states = profile_store.load_states(conn, people)
        without = sum(1 for pid in people if not _opted_in(states.get(pid), sms))
        if without:
            out.append(f"journey {name} sends marketing SMS (step {', '.join(steps)}): "
                       f"{without} of the {len(people)} people in its active runs have no "
                       "SMS opt-in, and marketing SMS needs one ([messages] opt_in); they "
                       "will be skipped ('no opt-in'). Set [messages] opt_in = [] to send "
                       "without")
    return out


def _opted_in(state: dict[str, Any] | None, sms: Mapping[str, ChannelInfo]) -> bool:
    if state is None:
        return False
    subs = computed(state)["subscriptions"]
    keys = {k for info in sms.values() for k in (info.name, info.kind)}
    return any((subs.get(k) or {}).get("subscribed") is True for k in keys)
