"""The journeys package's exceptions.

    KanalError
    └── JourneyError            a journey can't be loaded or run
        ├── JourneyFileError    a journey file is invalid (each problem with its line)
        └── WhyError            `why` was asked about an unknown person or journey
"""

from __future__ import annotations

from ..errors import KanalError
from ..yamlfile import Problem

__all__ = ["JourneyError", "JourneyFileError", "Problem", "WhyError"]


class JourneyError(KanalError):
    """A journey can't be loaded or run."""


class JourneyFileError(JourneyError):
    """A journey file is invalid; `problems` lists each one with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class WhyError(JourneyError):
    """The person or the journey `kanal journeys why` was asked about is unknown."""
