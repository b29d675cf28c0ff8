"""Journeys: rules that follow up on what people do, at the right time, on the right channel.

    errors.py      JourneyError and its subclasses
    definition.py  journey files: parse, validate (with line numbers), compile to steps
      model.py     Journey and Step, the compiled form
      checker.py   field lines and the checks every part of a file shares
      entry.py     trigger, entry rules and goal
      tree.py      the steps
    evaluator.py   starts, advances and ends runs (one person in one journey)
    step.py        the processor step: triggers, wait-for-event, goals
    timers.py      the timer worker: due timers, webhook calls, schedules, file reloads
    explain.py     `kanal journeys why` (wording, walk, refusals, why_text, versions)
    simulate.py    `kanal journeys simulate`

docs/journeys.md is the journey file reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .checker import References
    from .definition import Journey, Step, load_directory, load_file, parse_journey
    from .errors import JourneyError, JourneyFileError, Problem
    from .evaluator import Evaluator, outbox_key
    from .step import JourneysStep
    from .timers import SyncResult, TimerWorker, sync

_lazy = lazy_exports(__name__, {
    "References": ".checker",
    "Journey": ".definition",
    "Step": ".definition",
    "load_directory": ".definition",
    "load_file": ".definition",
    "parse_journey": ".definition",
    "JourneyError": ".errors",
    "JourneyFileError": ".errors",
    "Problem": ".errors",
    "Evaluator": ".evaluator",
    "outbox_key": ".evaluator",
    "JourneysStep": ".step",
    "SyncResult": ".timers",
    "TimerWorker": ".timers",
    "sync": ".timers",
})


def __getattr__(name: str) -> Any:
    """Import a public name on first use (exports.py)."""
    return _lazy(name)


__all__ = [
    "Evaluator",
    "Journey",
    "JourneyError",
    "JourneyFileError",
    "JourneysStep",
    "Problem",
    "References",
    "Step",
    "SyncResult",
    "TimerWorker",
    "load_directory",
    "load_file",
    "outbox_key",
    "parse_journey",
    "sync",
]
