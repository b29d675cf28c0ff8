"""The journey step `audience: {add: NAME}` / `audience: {remove: NAME}`.

    - audience: {add: cart_retarget}              # in the audience while the run goes on
    - audience: {add: past_buyers, keep: true}    # … and after it ends
    - audience: {remove: cart_retarget}           # out again (every journey's hold)

Adding writes a *hold* (store/audiences.py) in the step's transaction; the audience's
next sync sends it (soon: a changed audience is synced within a minute, not at its
schedule). A run's end (completed, converted, exited, expired, merged away) releases
its holds without `keep`. The audience is named in the journey file only: nothing of
an event (a public key's data) can aim the step at another audience. A person in the
audience's segment stays in it while they are in the segment, whatever a journey says.

Wherever journey files are checked against kanal.toml (`kanal journeys validate`,
`reload`, `simulate`, `kanal serve`), the names are checked against its
`[audiences.NAME]` tables (journeys/references.py), each problem with FILE:LINE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..store import audiences as store
from ..store.connection import Connection
from ..yamlfile import FieldPath
from .settings import NAME

Error = Callable[[FieldPath, str], None]


def parse_step(value: Any, here: FieldPath, error: Error) -> dict[str, Any]:
    """The spec of an `audience` step, or its problems told to `error` (with its path)."""
    if not isinstance(value, dict):
        error(here, "a mapping: {add: NAME} or {remove: NAME} (an [audiences.NAME] of "
                    "kanal.toml)")
        return {}
    for key in value:
        if key not in ("add", "remove", "keep"):
            error((*here, str(key)), f"unknown field {key!r} (expected one of add, keep, "
                                     "remove)")
    actions = [k for k in ("add", "remove") if k in value]
    if len(actions) != 1:
        error(here, "exactly one of add or remove")
        return {}
    action = actions[0]
    name = value[action]
    if not isinstance(name, str) or not NAME.match(name):
        error((*here, action), "an audience name (letters, digits, '_', '-', '.'), written "
                               f"in the file, not {name!r}")
    keep = value.get("keep", False)
    if not isinstance(keep, bool):
        error((*here, "keep"), f"true or false, not {keep!r}")
    elif keep and action == "remove":
        error((*here, "keep"), "only with add (keep the person after the run ends)")
    return {"action": action, "audience": name, "keep": keep is True}


def take_step(conn: Connection, spec: Mapping[str, Any], profile_id: int,
              run_id: int, now: int) -> dict[str, Any]:
    """Put the person in the audience (a hold of this run) or take them out; returns
    what the run's log records."""
    audience = str(spec["audience"])
    if spec["action"] == "add":
        store.add_hold(conn, audience, profile_id, run_id, bool(spec.get("keep")), now)
        return {"add": audience, "keep": bool(spec.get("keep"))}
    released = store.remove_holds(conn, audience, profile_id, now)
    return {"remove": audience, "holds": released}


def run_ended(conn: Connection, run_id: int, now: int) -> None:
    """A run ended: what it added without `keep` leaves the audience."""
    store.release_run(conn, run_id, now)


def step_text(spec: Mapping[str, Any]) -> str:
    """The step in words (`kanal journeys why`)."""
    if spec.get("action") == "add":
        until = "for good" if spec.get("keep") else "until the run ends"
        return f"put in audience {spec.get('audience')} ({until})"
    return f"taken out of audience {spec.get('audience')}"
