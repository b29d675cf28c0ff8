"""What a person is subscribed to, as the preference page shows and changes it.

Subscriptions are profile state (profiles/state.py `subs`): one flag per channel
("email": all marketing email) and per channel and topic ("email/newsletter"), set by
"Subscribed" / "Unsubscribed" events with `properties.channel` and `.topic`. A flag
never set counts as subscribed (consent to send at all is checked elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..profiles.state import computed
from ..store import profiles as profile_store
from ..store import tracking as store
from ..store.connection import Connection
from .settings import TrackingSettings


@dataclass(frozen=True, slots=True)
class Choice:
    """One checkbox of the preference page."""

    channel: str
    topic: str | None
    subscribed: bool

    @property
    def key(self) -> str:
        """How the form and the profile state name it: channel or channel/topic."""
        return self.channel if self.topic is None else f"{self.channel}/{self.topic}"


def choices(conn: Connection, settings: TrackingSettings, profile_id: int
            ) -> list[Choice]:
    """Every channel and topic to show for a profile, with its current value."""
    state = profile_store.load_states(conn, [profile_id]).get(profile_id, {})
    subs = computed(state)["subscriptions"]
    topics: dict[str, set[str]] = {c: set(settings.topics) for c in settings.channels}
    for channel, topic in store.profile_topics(conn, profile_id):
        topics.setdefault(channel, set()).add(topic)
    for channel, slot in subs.items():
        topics.setdefault(channel, set()).update(slot["topics"])
    out: list[Choice] = []
    for channel in sorted(topics, key=lambda c: (c not in settings.channels, c)):
        slot = subs.get(channel, {"subscribed": None, "topics": {}})
        out.append(Choice(channel, None, slot["subscribed"] is not False))
        for topic in sorted(topics[channel]):
            out.append(Choice(channel, topic, slot["topics"].get(topic) is not False))
    return out
