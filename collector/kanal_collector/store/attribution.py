"""The one read behind the attribution report: every candidate touchpoint and conversion,
grouped by profile and in time order.

Read-only. The rows come straight off the cursor (never a list of a million rows).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from .connection import Connection

CandidateRow = tuple[int, int, int, str, str | None, str, str, int]
"""(profile_id, timestamp, event_id, type, event, key_kind, body, is_goal): one event
that may be a touchpoint or a conversion, on its (surviving) profile. is_goal is 1 for
a goal event in the report's window (a conversion unless a bot's). A plain tuple: a
named one costs a noticeable share of the report at a million rows. The body is the
stored text, read for its properties and context only: the top-level keys the columns
hold may be absent (store/events.py `slim_body`)."""


REFERRER = "'\"referrer\"'"
CAMPAIGN = "'\"campaign\"'"
"""SQL literals of the body pre-filter: a body that mentions a referrer, or a campaign."""


def _marks(values: Collection[str]) -> str:
    return ",".join("?" * len(values))


def candidate_events(conn: Connection, *, goal_events: Collection[str],
                     message_events: Collection[str], kanal_key_kind: str,
                     since_ms: int, until_ms: int, lookback_ms: int,
                     ) -> Iterator[CandidateRow]:
    """Events of profiles in [since − lookback, until) that may matter to attribution,
    ordered by profile, timestamp and event id.

    Goal events (track events named in `goal_events`) carry is_goal = 1 when they fall in
    [since, until). Besides them: Kanal's own events named in `message_events`, page or
    screen views that mention "referrer" and events whose body mentions "campaign" (UTM).
    The body checks are a cheap pre-filter; the caller decides from the parsed body
    what really counts.
    """
    if not goal_events:
        raise ValueError("goal_events must name at least one event")
    goals = list(goal_events)
    messages = list(message_events) or [""]
    # CROSS JOIN keeps profile_events as the outer loop: its primary key is already
    # (profile_id, timestamp, event_id), so the rows come out in order with no sort.
    sql = (
        "SELECT pe.profile_id, pe.timestamp, pe.event_id, e.type, e.event, e.key_kind, "
        f"e.body, (e.type = 'track' AND e.event IN ({_marks(goals)}) "
        "AND pe.timestamp >= ?) AS is_goal "
        f"FROM profile_events pe {conn.dialect.ordered_join} events e ON e.id = pe.event_id "
        "WHERE pe.timestamp >= ? AND pe.timestamp < ? AND ("
        f"(e.type = 'track' AND e.event IN ({_marks(goals)})) "
        f"OR (e.key_kind = ? AND e.event IN ({_marks(messages)})) "
        # Views first: nearly every one mentions a referrer, so the second search
        # through the body is skipped for them (a quarter off the read).
        "OR (e.type IN ('page', 'screen') AND "
        f"{conn.dialect.contains('e.body', REFERRER)}) "
        f"OR {conn.dialect.contains('e.body', CAMPAIGN)}) "
        "ORDER BY pe.profile_id, pe.timestamp, pe.event_id"
    )
    params = [*goals, since_ms, since_ms - lookback_ms, until_ms, *goals, kanal_key_kind,
              *messages]
    return conn.stream(sql, params)
