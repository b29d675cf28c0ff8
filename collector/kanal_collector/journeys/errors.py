"""The journeys package's exceptions.

    KanalError
    └── JourneyError            a journey can't be loaded or run
        ├── JourneyFileError    a journey file is invalid (each problem with its line)
        └── WhyError            `why` was asked about an unknown person or journey
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KanalError


class JourneyError(KanalError):
    """A journey can't be loaded or run."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a journey file: where (field path and line) and what."""

    source: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line else self.source
        return f"{at}: {self.where}: {self.message}" if self.where else f"{at}: {self.message}"


class JourneyFileError(JourneyError):
    """A journey file is invalid; `problems` lists each one with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class WhyError(JourneyError):
    """The person or the journey `kanal journeys why` was asked about is unknown."""
