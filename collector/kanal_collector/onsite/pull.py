"""One page view's on-site messages: what the snippet asks once per page view.

The answer, built from the profile the browser may see (access.py), holds:

1. messages journeys queued for the person (`send: MESSAGE, channel: onsite`): each is
   claimed here, in one write transaction, so it is shown at most once, in whichever of
   the person's browsers asks first, until it expires; its delivery event ("On-site
   Message Delivered") is written in the same transaction;
2. the campaigns whose rules match: page path, device class, segments, audience, not
   `hide_if`, not shown too often (day, ever: from the person's timeline; the snippet
   also keeps per-visit and per-browser counts), one per place on the page (a slot, the
   modal, a banner edge, the slide-in), the person's stable arm — or the holdout, which
   shows nothing but is reported so the experiment counts it.

Every message carries a ticket (signing.py) that the browser hands back when it reports
what it did with it and when it submits its form.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ..messages.catalog import Catalog
from ..messages.controls import DEFER, DEFERRED, SEND, SKIPPED, Controls, Decision, decide
from ..messages.delivery import delivery_event
from ..messages.eligibility import ChannelInfo, Policy, check, load_person
from ..messages.errors import MessageError
from ..messages.linkguard import LinkPolicy
from ..messages.renderer import Trust
from ..profiles.segments import ProfileView, matches
from ..profiles.state import computed, traits_of, trusted_traits
from ..store import identities as identity_store
from ..store import onsite as store
from ..store import outbox as outbox_store
from ..store import profiles as profile_store
from ..store import segments as segment_store
from ..store import timeline
from ..store.connection import Connection
from ..store.db import transaction
from ..store.events import append_events
from .access import Visitor
from .campaigns import Campaign
from .catalog import Campaigns
from .content import UnsafeContent, render_onsite
from .events import FORM_SUBMITTED, SHOWN
from .signing import sign

log = logging.getLogger("kanal.onsite")

TICKET = "show"
ONSITE = "onsite"
JOURNEY_LAYOUT = "slide_in"
"""How a journey's message shows unless its step's data says `layout` (and `slot`)."""
DAY_MS = 86_400_000
REFRESH_SECONDS = 1.0

Functions = Callable[[Connection, int | None, Mapping[str, Any],
                      Mapping[str, Any], int, int | None, str | None, str | None], Any]
"""Makes the template functions of one rendering (products' `ProductFunctions`)."""


@dataclass(frozen=True)
class Page:
    """The page view a pull is for."""

    url: str
    path: str
    device: str
    """desktop, mobile, tablet, other or bot (from the User-Agent)."""
    language: str | None


def page_of(url: Any, device: str, language: Any) -> Page:
    """The page from what the snippet sent (a bad URL is the site's root)."""
    text = url if isinstance(url, str) else ""
    try:
        path = urlsplit(text[:2000]).path or "/"
    except ValueError:
        path = "/"
    lang = language if isinstance(language, str) and len(language) <= 35 else None
    return Page(text[:2000], path, device, lang)


@dataclass
class _Person:
    profile_id: int | None
    traits: dict[str, Any]
    computed: dict[str, Any]
    segments: set[str]
    view: ProfileView
    untrusted_traits: frozenset[str] = frozenset()
    """Traits last written by untrusted events: they may not aim links (linkguard.py)."""
    _done: dict[str, list[tuple[str, int]]] | None = None

    def done(self, name: str) -> list[tuple[str, int]]:
        """(campaign, time) of the person's events `name` (read once per pull)."""
        if self._done is None:
            self._done = {}
        if name not in self._done:
            self._done[name] = [
                (str((b.get("properties") or {}).get("campaign")), _ms(b.get("timestamp")))
                for b in self.view.events(name, 0)]
        return self._done[name]


def _ms(iso: Any) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


def _person(conn: Connection, profile_id: int | None) -> _Person:
    if profile_id is not None:
        state = profile_store.load_states(conn, [profile_id]).get(profile_id)
        if state is not None:
            pid = profile_id

            def events(name: str, since: int) -> Any:
                return timeline.profile_events_since(conn, pid, name, since)

            values = computed(state)
            traits = traits_of(state)
            segments = {s for s, _ in segment_store.profile_segments(conn, pid)}
            return _Person(pid, traits, values, segments, ProfileView(traits, values, events),
                           frozenset(traits) - trusted_traits(state))
    values = computed({})
    return _Person(None, {}, values, set(), ProfileView({}, values, lambda n, s: iter(())))


def _place(layout: str, slot: str | None, position: str | None) -> str:
    if layout == "slot":
        return f"slot:{slot}"
    if layout == "banner":
        return f"banner:{position or 'top'}"
    return layout


def _seen(person: _Person, campaign: Campaign, now_ms: int) -> bool:
    """Shown too often already (per the person's timeline), or its form already sent."""
    if person.profile_id is None:
        return False
    since = {"day": now_ms - DAY_MS, "ever": 0}.get(campaign.frequency)
    if since is not None and any(c == campaign.name and at >= since
                                 for c, at in person.done(SHOWN)):
        return True
    return any(c == campaign.name for c, _ in person.done(FORM_SUBMITTED))


def _hold(conn: Connection, outbox_id: int, decision: Decision, now_ms: int) -> None:
    """Defer or skip a queued row a control held back, and log why (as the dispatcher)."""
    assert decision.reason is not None
    if decision.action == DEFER:
        assert decision.until_ms is not None
        done = store.defer_queued(conn, outbox_id, decision.until_ms, decision.reason, now_ms)
        what = DEFERRED
    else:
        done = store.skip_queued(conn, outbox_id, decision.reason, now_ms)
        what = SKIPPED
    if done:
        outbox_store.log_decision(conn, outbox_id, now_ms, what, decision.detail())


class Puller:
    """Answers pulls: the campaigns, the message catalogue and the template functions."""

    def __init__(self, campaigns: Campaigns, catalog: Catalog, functions: Functions, *,
                 default_ttl_ms: int, policy: Policy | None = None,
                 controls: Controls | None = None,
                 link_policy: LinkPolicy | None = None) -> None:
        self.campaigns = campaigns
        self.catalog = catalog
        self.functions = functions
        self.default_ttl_ms = default_ttl_ms
        self.policy = policy or Policy()
        """Consent and subscriptions (`[messages]`), checked again when a queued message
        is handed out, as the dispatcher does at send time."""
        self.link_policy = link_policy or LinkPolicy()
        """Where links aimed by untrusted data may point ([tracking] link_hosts), as for
        every other channel: a journey's on-site message can carry an untrusted trigger's
        properties, and any message the traits untrusted events wrote."""
        controls = controls or Controls()
        self.controls = replace(controls, quiet_hours=None)
        """Frequency caps and the daily budget (`[frequency]`), applied to a queued message
        when it would be handed out. Quiet hours only from `[quiet_hours.onsite]`: the
        global window keeps notifications from waking people, and someone looking at the
        shop's page is awake."""
        self._checked = float("-inf")

    def refresh(self, *, force: bool = False) -> None:
        """Re-read changed campaign and message files: looked at once a second at most
        (a busy shop's pulls must not stat every file each time) unless `force` (the
        site document, which browsers cache, always looks)."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return
        self._checked = now
        self.campaigns.refresh()
        self.catalog.refresh()

    def active(self) -> bool:
        """Whether any campaign is enabled (the site document's `on`)."""
        return bool(self.campaigns.active())

    def pull(self, conn: Connection, key: bytes, visitor: Visitor, page: Page,
             now_ms: int) -> tuple[list[dict[str, Any]], bool]:
        """The messages for one page view, and whether events were written."""
        if page.device == "bot":
            return [], False
        person = _person(conn, visitor.profile_id)
        language = person.computed.get("language") or page.language
        taken: set[str] = set()
        out: list[dict[str, Any]] = []
        wrote = False
        if person.profile_id is not None:
            wrote = self._queued(conn, key, visitor, person, language, now_ms, out, taken)
        for campaign in self.campaigns.active():
            item = self._campaign(conn, key, visitor, person, page, language, campaign,
                                  now_ms, taken)
            if item is not None:
                out.append(item)
        return out, wrote

    def form_of(self, conn: Connection, message: Any, language: Any,
                now_ms: int) -> dict[str, Any] | None:
        """The form of a message as a stranger sees it (its consent text is what the
        submission records), or None when it has none."""
        if not isinstance(message, str) or message not in self.catalog:
            return None
        lang = language if isinstance(language, str) and len(language) <= 35 else None
        try:
            content, _ = self._render(conn, message, _person(conn, None), {}, lang, now_ms,
                                      None, None)
        except (MessageError, UnsafeContent):
            return None
        form = content.get("form")
        return form if isinstance(form, dict) else None

    def _ticket(self, key: bytes, visitor: Visitor, now_ms: int, **fields: Any) -> str:
        payload = {k: v for k, v in fields.items() if v is not None}
        payload.update(a=visitor.anonymous_id, u=visitor.user_id, s=visitor.source_id)
        return sign(key, TICKET, now_ms, payload)

    def _render(self, conn: Connection, message: str, person: _Person,
                data: Mapping[str, Any], language: str | None, now_ms: int,
                outbox_id: int | None, journey: str | None,
                untrusted_data: Collection[str] = ()) -> tuple[dict[str, Any], Any]:
        definition = self.catalog.get(message)
        functions = self.functions(conn, person.profile_id, person.traits, data, now_ms,
                                   outbox_id, message, journey)
        content = render_onsite(definition, traits=person.traits,
                                profile={"id": person.profile_id, **person.computed}
                                if person.profile_id is not None else {},
                                data=data, language=language,
                                trust=Trust(self.link_policy, untrusted_data,
                                            person.untrusted_traits),
                                functions=functions.globals())
        return content, functions

    def _queued(self, conn: Connection, key: bytes, visitor: Visitor,
                person: _Person, language: str | None, now_ms: int,
                out: list[dict[str, Any]], taken: set[str]) -> bool:
        assert person.profile_id is not None
        rows = store.queued_for(conn, person.profile_id, now_ms)
        if not rows:
            return False
        wrote = False
        source = profile_store.first_source(conn)
        identities = identity_store.profile_identities(conn, person.profile_id)
        for row in rows:
            layout = str(row.data.get("layout") or JOURNEY_LAYOUT)
            slot = row.data.get("slot") if layout == "slot" else None
            place = _place(layout, slot if isinstance(slot, str) else None, None)
            if place in taken:
                continue
            with transaction(conn):
                current = load_person(conn, row.profile_id)
                why = "no profile" if current is None else check(
                    conn, current, ChannelInfo(ONSITE, ONSITE, None), kind=row.kind,
                    topic=row.topic, policy=self.policy)[1]
                if why is not None:  # unsubscribed, consent withdrawn, forgotten meanwhile
                    store.skip_queued(conn, row.id, why, now_ms)
                    wrote = True
                    continue
                assert current is not None
                decision = decide(conn, row, current, ONSITE, now_ms, self.controls,
                                  channel_kind=ONSITE)
                if decision.action != SEND:  # a cap or the budget: later, or never
                    _hold(conn, row.id, decision, now_ms)
                    wrote = True
                    continue
                try:
                    content, functions = self._render(conn, row.message, person, row.data,
                                                      language, now_ms, row.id, row.journey,
                                                      row.untrusted)
                except (MessageError, UnsafeContent) as exc:
                    # SkipSend and RenderError are MessageErrors: the row ends visibly.
                    log.warning("on-site outbox %s can't be shown: %s", row.id, exc)
                    store.fail_queued(conn, row.id, str(exc), now_ms)
                    wrote = True
                    continue
                if not store.claim_queued(conn, row.id, language=content["language"],
                                          now=now_ms):
                    continue  # another of the person's browsers got it first
                functions.record()
                if source is not None:
                    append_events(conn, [delivery_event(
                        row, channel_kind="onsite", delivered=True, source_id=source,
                        identities=identities, now_ms=now_ms, detail={})])
                wrote = True
            taken.add(place)
            out.append({
                "id": f"o{row.id}", "outbox_id": row.id, "journey": row.journey,
                "message": row.message, "layout": layout, "slot": slot, "frequency": "always",
                "content": content,
                "ticket": self._ticket(key, visitor, now_ms, o=row.id, m=row.message,
                                       j=row.journey, st=row.step),
            })
        return wrote

    def _campaign(self, conn: Connection, key: bytes, visitor: Visitor,
                  person: _Person, page: Page, language: str | None, campaign: Campaign,
                  now_ms: int, taken: set[str]) -> dict[str, Any] | None:
        place = _place(campaign.layout, campaign.slot, campaign.position)
        if place in taken or not campaign.on_page(page.path) \
                or (campaign.devices and page.device not in campaign.devices):
            return None
        if campaign.segments and not person.segments & set(campaign.segments):
            return None
        if campaign.audience is not None and not matches(campaign.audience, person.view,
                                                         now_ms):
            return None
        if campaign.hide_if is not None and matches(campaign.hide_if, person.view, now_ms):
            return None
        if _seen(person, campaign, now_ms):
            return None
        arm = campaign.arm_for(visitor.key)
        item: dict[str, Any] = {
            "id": f"c{campaign.name}", "campaign": campaign.name, "layout": campaign.layout,
            "slot": campaign.slot, "position": campaign.position,
            "frequency": campaign.frequency, "delay": campaign.delay_ms,
            "scroll": campaign.scroll, "exit": campaign.exit_intent,
        }
        if arm is None:
            taken.add(place)
            item.update(arm="holdout", holdout=True, ticket=self._ticket(
                key, visitor, now_ms, c=campaign.name, r="holdout"))
            return item
        try:
            content, _ = self._render(conn, arm.message, person, {}, language, now_ms,
                                      None, None)
        except (MessageError, UnsafeContent) as exc:
            log.warning("campaign %s: message %s can't be shown: %s", campaign.name,
                        arm.message, exc)
            return None
        taken.add(place)
        item.update(arm=arm.name, message=arm.message, content=content,
                    ticket=self._ticket(key, visitor, now_ms, c=campaign.name, r=arm.name,
                                        m=arm.message))
        return item

