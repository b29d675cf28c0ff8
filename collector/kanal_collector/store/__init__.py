"""Storage: every SQL statement of the collector lives in this package.

The rest of Kanal holds a `Database` and the `Connection`s it hands out
(`connection`: the interface; SQLite's connection is sqlite3's own, PostgreSQL's is in
`postgres`), opens write transactions with `transaction`, and calls the functions of
the modules here, which hold the queries of one table family each. `dialect` names
what differs between the engines; `schema` holds the versioned migrations of both;
`leases` the leases several nodes share the work by, `partitions` PostgreSQL's monthly
event log and `retention` the one way old events leave it (`kanal events prune`).
"""

from __future__ import annotations

from .connection import DB_ERRORS, Connection
from .db import Database, transaction
from .schema import migrate, schema_version

__all__ = ["DB_ERRORS", "Connection", "Database", "migrate", "schema_version", "transaction"]
