"""Split tests: each arm's runs, conversions and revenue against a control arm.

A journey's `split` step gives every run an arm (journey_assignments). For every split
step with runs that entered in the window, each arm's conversion rate is compared with
the control's by `stats.two_proportion`: the control is `holdout` when any run was held
out, else the split's first arm in the journey file. An arm is `significant` when the
two-sided p-value is below 1 − confidence; `warning` says when the samples are too
small for the normal approximation (fewer than 30 runs, or fewer than 5 conversions or
non-conversions in an arm), and when a holdout can't convert at all (a goal without
`within` converts only runs still going, and a holdout run ends at the split).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..store import reports as store
from ..store.connection import Connection
from .funnels import Definitions, check_window, money
from .stats import two_proportion

HOLDOUT = "holdout"
_NO_WINDOW_GOAL = ("holdout runs end at the split and this journey's goal has no "
                   "`within`, so they can't convert: add goal.within to measure the lift")


def _file_arms(definitions: Definitions, journey: str, step: str,
               versions: set[int]) -> list[str]:
    """The split's arm names in file order: the current version's, else the newest
    version (of those the runs used) that has the step."""
    for version in definitions.versions_newest_first(journey, versions):
        parsed = version.journey
        if parsed is not None and step in parsed.steps and parsed.steps[step].kind == "split":
            return [str(name) for name, _ in parsed.steps[step].spec["arms"]]
    return []


def _holdout_can_convert(definitions: Definitions, journey: str) -> bool:
    version = definitions.current.get(journey, (None, False))[0]
    if version is None:
        return True
    parsed = definitions.tree(journey, version).journey
    return parsed is None or parsed.goal is None or parsed.goal.get("within_ms") is not None


def experiments(conn: Connection, *, journey: str | None = None,
                since_ms: int | None = None, until_ms: int | None = None,
                confidence: float = 0.95) -> list[dict[str, Any]]:
    """Every split step's arms against its control, for runs entered in the window
    (of one journey, or of all), by journey and then the step's place in the file.

    Arms are listed control first, then in file order (an arm of the file without runs
    yet shows 0 runs and no test), then arms only older versions had. ValueError for a
    bad window or a confidence outside (0, 1).
    """
    check_window(since_ms, until_ms)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) \
            or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence!r}")
    # (journey, step) → arm → [runs, converted, revenue], and the versions of its runs
    arms_of: dict[tuple[str, str], dict[str, list[Any]]] = defaultdict(dict)
    versions_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    for name, step, arm, version, n, won, earned in store.arm_counts(
            conn, journey=journey, since_ms=since_ms, until_ms=until_ms):
        sofar = arms_of[(name, step)].setdefault(arm, [0, 0, 0.0])
        sofar[0] += n
        sofar[1] += won
        sofar[2] += earned
        versions_of[(name, step)].add(version)
    definitions = Definitions(conn)

    found: list[tuple[tuple[str, int, str], dict[str, Any]]] = []
    for (name, step), arms in arms_of.items():
        versions = versions_of[(name, step)]
        file_arms = _file_arms(definitions, name, step, versions)
        control = HOLDOUT if HOLDOUT in arms else (file_arms or sorted(arms))[0]
        order = [control] + [a for a in file_arms if a != control]
        order += sorted(set(arms) - set(order))
        counts = {arm: tuple(arms.get(arm, (0, 0, 0.0))) for arm in order}
        n_c, conv_c, _ = counts[control]
        extra = (_NO_WINDOW_GOAL if control == HOLDOUT
                 and not _holdout_can_convert(definitions, name) else None)
        rows = []
        for arm in order:
            n, conv, revenue = counts[arm]
            row: dict[str, Any] = {"arm": arm, "runs": n, "conversions": conv,
                                   "rate": conv / n if n else 0.0, "revenue": money(revenue),
                                   "lift": None, "p_value": None, "ci_low": None,
                                   "ci_high": None, "significant": None, "warning": None}
            if arm != control:
                cmp = two_proportion(conv_c, n_c, conv, n, confidence=confidence,
                                     names=(control, arm))
                warnings = [w for w in (cmp.warning, extra) if w]
                row.update(lift=cmp.lift, p_value=cmp.p_value, ci_low=cmp.ci_low,
                           ci_high=cmp.ci_high, significant=cmp.significant,
                           warning="; ".join(warnings) or None)
            rows.append(row)
        found.append(((name, _position(definitions, name, step, versions), step),
                      {"journey": name, "step": step, "control": control, "arms": rows}))
    return [experiment for _, experiment in sorted(found, key=lambda f: f[0])]


def _position(definitions: Definitions, journey: str, step: str, versions: set[int]) -> int:
    """Where the step is in the file (steps no version knows go last)."""
    for version in definitions.versions_newest_first(journey, versions):
        if step in version.order:
            return version.order.index(step)
    return 1_000_000
