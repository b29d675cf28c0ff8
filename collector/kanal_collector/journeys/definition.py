"""Journey files: parse, validate (every problem with its line) and compile to steps.

A journey is one YAML file in `journeys/` (docs/journeys.md is the full reference):

    name: abandoned_cart             # default: the file's stem
    priority: 10                     # who gets a person's daily budget (default 0)
    quiet_hours: defer               # or drop (messages/controls.py)
    over_limit: wait                 # or skip (over a frequency cap or the budget)
    trigger: {event: Product Added, where: {currency: EUR}}
    entry: {rule: every_time, dedupe: cart_id}
    goal: {event: Order Completed, within: 7d}
    steps:
      - wait_for: {event: Order Completed, timeout: 1h}
        on_timeout:
          - send: cart_reminder
            channel: email
          - wait: 1d
          - wait_window: {from: "09:00", to: "18:00", days: [mon, tue, wed, thu, fri]}
          - send: cart_reminder
            channel: sms

Steps form a tree (branches hold lists of steps and then continue after their step),
so a run visits each step at most once: (run id, step id) is a safe idempotency key.
The version of a journey is the hash of its file's text; runs keep the version they
started on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import yamlfile
from .checker import CONTROLS, Checker, References
from .entry import ENTRY_RULES, check_entry, check_exclude, check_goal, check_triggers
from .errors import JourneyFileError, Problem
from .model import Journey, Step, content_hash, event_matches
from .references import check_references
from .tree import ACTIONS, MESSAGE_KINDS, NAME, check_steps

__all__ = ["ACTIONS", "ENTRY_RULES", "MESSAGE_KINDS", "Journey", "References", "Step",
           "content_hash", "event_matches", "journey_files", "load_directory", "load_file",
           "load_files", "parse_journey"]
_TOP = frozenset({"name", "description", "trigger", "entry", "goal", "steps", "kind",
                  "enabled", "priority", "quiet_hours", "over_limit", "group", "exclude"})


def _check_top(c: Checker, data: Any, default_name: str | None) -> Journey | None:
    if not isinstance(data, dict):
        c.error((), "a journey file is a mapping (name, trigger, steps, …)")
        return None
    c.unknown(data, _TOP, ())
    name = data.get("name", default_name)
    if name is None:
        c.error((), "name: a journey needs a name")
        name = "?"
    elif not isinstance(name, str) or not NAME.match(name):
        c.error(("name",), "letters, digits, '_', '-', '.' (≤100)")
        name = default_name or "?"
    kind = data.get("kind", "marketing")
    if kind not in MESSAGE_KINDS:
        c.error(("kind",), "marketing or transactional")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        c.error(("enabled",), "true or false")
    priority = c.priority(data["priority"], ("priority",)) if "priority" in data else 0
    controls = {key: c.control(key, data[key], (key,)) if key in data else choices[0]
                for key, choices in CONTROLS.items()}
    triggers = check_triggers(c, data.get("trigger"))
    entry = check_entry(c, data.get("entry"))
    if entry.get("dedupe") and not all("event" in t for t in triggers):
        c.error(("entry", "dedupe"), "a dedupe key needs event triggers")
    goal = check_goal(c, data.get("goal"))
    group = data.get("group")
    if group is not None and (not isinstance(group, str) or not NAME.match(group)):
        c.error(("group",), "a group name (letters, digits, '_', '-', '.')")
        group = None
    exclude_journeys, exclude_groups = check_exclude(c, data.get("exclude"))
    steps: dict[str, Step] = {}
    if "steps" not in data:
        c.error((), "steps: a list of steps is required")
    first = check_steps(c, data.get("steps"), ("steps",), "", None, steps)
    return Journey(name=name, source=c.source, text="", triggers=triggers, entry=entry,
                   goal=goal, steps=steps, first=first, kind=str(kind),
                   enabled=bool(enabled), description=str(data.get("description") or ""),
                   priority=priority, quiet_hours=controls["quiet_hours"],
                   over_limit=controls["over_limit"], group=group,
                   exclude_journeys=exclude_journeys, exclude_groups=exclude_groups)


def parse_journey(text: str, *, source: str = "<string>", name: str | None = None,
                  messages: Collection[str] | None = None,
                  references: References | None = None, strict: bool = True) -> Journey:
    """Validate a journey file's text; JourneyFileError lists every problem with its line.

    `references` says what the file may name outside itself (messages with their
    channel kinds, channels, other journeys and groups); each known part is checked
    against what the file names. `messages` (message names only) is a shorthand. With
    `strict` (files being loaded or validated), an unquoted value YAML 1.1 and 1.2 read
    differently is a problem (yamlfile.py); a stored version that runs are pinned to is
    parsed with `strict=False`, as it always was.
    """
    document = yamlfile.read(text, source=source, strict=strict)
    if document.data is None and document.problems:
        raise JourneyFileError(document.problems)
    if messages is not None:
        references = replace(references or References(),
                             messages={m: () for m in messages})
    c = Checker(source, document.lines, references)
    journey = _check_top(c, document.data, name)
    if journey is not None:
        check_references(c, journey)
    if c.problems or document.problems or journey is None:
        raise JourneyFileError(yamlfile.combine(document.problems, c.problems))
    return Journey(**{**journey.__dict__, "text": text})


def load_file(path: Path, *, messages: Collection[str] | None = None,
              references: References | None = None) -> Journey:
    """Read and validate one journey file (its name defaults to the file's stem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JourneyFileError([Problem(str(path), None, "", str(exc))]) from None
    return parse_journey(text, source=str(path), name=path.stem, messages=messages,
                         references=references)


def journey_files(directory: Path) -> list[Path]:
    """The journey files of a directory (*.yaml, *.yml, also in subfolders), sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file())


def load_files(paths: Sequence[Path], references: References | None = None, *,
               context: Sequence[Path] = ()) -> tuple[dict[str, Journey], list[Problem]]:
    """The valid journeys among `paths`, and the problems of the invalid ones.

    Journeys may exclude each other by name or group: those references are checked
    against every file of `paths` and `context` (the rest of the directory). Two files
    with one journey name are an error.
    """
    refs = references or References()
    names: set[str] = set()
    groups: set[str] = set()
    for path in dict.fromkeys([*paths, *context]):
        try:  # the first pass only learns names and groups
            found = load_file(path)
        except JourneyFileError:
            names.add(path.stem)
            continue
        names.add(found.name)
        if found.group:
            groups.add(found.group)
    refs = replace(refs, journeys=names, groups=groups)
    journeys: dict[str, Journey] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            journey = load_file(path, references=refs)
        except JourneyFileError as exc:
            problems.extend(exc.problems)
            continue
        if journey.name in journeys:
            problems.append(Problem(str(path), None, "name", f"journey {journey.name!r} "
                                    f"is also defined in {journeys[journey.name].source}"))
            continue
        journeys[journey.name] = journey
    return journeys, problems


def load_directory(directory: Path, references: References | None = None
                   ) -> tuple[dict[str, Journey], list[Problem]]:
    """The valid journeys of a directory, and the problems of the invalid files."""
    return load_files(journey_files(directory), references)
