"""The campaigns' experiments: each arm's people and conversions against the control.

A person joins a campaign's experiment the first time they are shown it, or held out
of it (`onsite_exposures`, kept by the processor). Their conversion is the campaign's
goal event (`goal`, default Order Completed) within `goal.within` (default 7 days) of
that moment. The control is the holdout when anyone was held out, else the first arm;
each other arm is compared with it by the same statistics as journey splits
(reports/stats.py: a pooled two-proportion z-test and a Wald interval, with the same
small-sample warning). The shown / clicked / dismissed / submitted counts are events
in the window.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..reports.stats import two_proportion
from ..store import onsite as store
from ..store import profiles as profile_store
from ..store.connection import Connection
from .campaigns import HOLDOUT, Campaign
from .events import CLICKED, DISMISSED, FORM_SUBMITTED, SHOWN

DEFAULT_GOAL = ("Order Completed", 7 * 86_400_000)
_ACTIONS = {SHOWN: "shown", CLICKED: "clicked", DISMISSED: "dismissed",
            FORM_SUBMITTED: "submitted"}


def campaign_report(conn: Connection, campaigns: Mapping[str, Campaign], *,
                    since_ms: int, until_ms: int, confidence: float = 0.95
                    ) -> list[dict[str, Any]]:
    """Every campaign with exposures in the window (or defined now), arm by arm."""
    actions: Counter[tuple[str, str, str]] = Counter()
    for name, body in store.action_counts(conn, list(_ACTIONS), since_ms, until_ms):
        props = json.loads(body).get("properties") or {}
        if isinstance(props.get("campaign"), str):
            actions[(props["campaign"], str(props.get("arm")), _ACTIONS[name])] += 1
    names = sorted(set(campaigns) | set(store.exposed_campaigns(conn)))
    out = []
    for name in names:
        campaign = campaigns.get(name)
        goal, within = ((campaign.goal_event, campaign.goal_within_ms) if campaign
                        else DEFAULT_GOAL)
        people: dict[str, list[bool]] = {}
        for pid, arm, first_at in store.exposures(conn, name, since_ms, until_ms):
            current = profile_store.merged_into(conn, pid) or pid
            people.setdefault(arm, []).append(
                store.converted(conn, current, goal, first_at, first_at + within))
        order = [a.name for a in campaign.arms] if campaign else []
        order = ([HOLDOUT] if HOLDOUT in people else []) + order
        order += sorted(set(people) - set(order))
        if not order:
            continue
        control = order[0]
        n_c, conv_c = len(people.get(control, [])), sum(people.get(control, []))
        rows = []
        for arm in order:
            n, conv = len(people.get(arm, [])), sum(people.get(arm, []))
            row: dict[str, Any] = {
                "arm": arm, "people": n, "conversions": conv, "rate": conv / n if n else 0.0,
                **{k: actions[(name, arm, k)] for k in _ACTIONS.values()},
                "lift": None, "p_value": None, "ci_low": None, "ci_high": None,
                "significant": None, "warning": None}
            if arm != control:
                cmp = two_proportion(conv_c, n_c, conv, n, confidence=confidence,
                                     names=(control, arm))
                row.update(lift=cmp.lift, p_value=cmp.p_value, ci_low=cmp.ci_low,
                           ci_high=cmp.ci_high, significant=cmp.significant,
                           warning=cmp.warning)
            rows.append(row)
        out.append({"campaign": name, "goal": goal, "within_ms": within,
                    "control": control, "arms": rows})
    return out
