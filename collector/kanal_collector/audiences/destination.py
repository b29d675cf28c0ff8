"""What a destination plugin is: the contract between the audience sync and a platform.

A destination keeps a set of people on an ad platform (or a file, a webhook) in step
with an audience. Kanal decides who enters and who leaves; the destination turns one
person into a *row* of hashed identifiers (`row`), and sends batches of rows to add or
remove (`send`). The row is what Kanal keeps: a removal sends the very row that was
added, even after the person changed their email or was forgotten.

Built-in destinations (meta, google_ads, webhook, csv) and third-party ones implement
the same class and register through the same pluggy hook (`register_destinations`,
channels/hookspecs.py); their settings through `register_settings`, as keys named
`destinations.TYPE.KEY`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .person import Person

ADD = "add"
REMOVE = "remove"

Row = Mapping[str, Any]
"""One person as a destination sends them: JSON-able, hashed identifiers only."""


@dataclass(frozen=True)
class Request:
    """One request a batch makes, as a dry run writes it (credentials left out)."""

    method: str
    url: str
    body: Any

    def as_json(self) -> dict[str, Any]:
        """The request as a JSON object."""
        return {"method": self.method, "url": self.url, "body": self.body}


@dataclass(frozen=True)
class BatchResult:
    """What the destination said about a batch it took.

    `rejected` maps a row's index in the batch to why the platform refused it (a partial
    failure); every other row is acknowledged. `note` is what else is worth showing
    (Meta counts invalid rows without saying which).
    """

    rejected: Mapping[int, str] = field(default_factory=dict)
    note: str | None = None


class Destination(ABC):
    """Base class of destination plugins.

    Subclasses set `name` (the `destination` of `[audiences.NAME]`, e.g. "meta") and
    `max_batch` (the most rows one request may carry: the platform's limit). `settings`
    is the audience's table of kanal.toml without the keys every audience has, secrets
    already resolved from the environment; `audience` is the audience's name.
    """

    name: ClassVar[str]
    max_batch: ClassVar[int] = 1000

    def __init__(self, settings: Mapping[str, Any], *, audience: str) -> None:
        self.settings = settings
        self.audience = audience
        self.batch_size = self.max_batch
        """Rows per request: `max_batch`, or less when the settings say so."""

    @abstractmethod
    def row(self, person: Person) -> Row | None:
        """The person as hashed identifiers this platform matches on, or None when it
        has nothing to match them on. The same person must give the same row."""

    @abstractmethod
    def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
        """The requests `send` makes for a batch (`add` or `remove`), for a dry run."""

    @abstractmethod
    def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
        """Add or remove a batch of at most `max_batch` rows; raise TransientError (try
        again later) or PermanentError (it won't work until something changes)."""

    def close(self) -> None:  # noqa: B027 - optional: most destinations hold nothing
        """Release connections (when the sync stops)."""
