"""Storage: every SQL statement of the collector lives in this package.

`db` opens connections and owns the one write-transaction helper (BEGIN IMMEDIATE);
`schema` holds the versioned migrations; the other modules hold the queries of one
table family each, so a second backend only has to replace this package.
"""

from __future__ import annotations

from .db import Database, connect, transaction
from .schema import migrate, schema_version

__all__ = ["Database", "connect", "migrate", "schema_version", "transaction"]
