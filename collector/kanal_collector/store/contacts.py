"""What schema migration 11 did to existing email and phone identities (contact_fixes).

Read by `kanal profiles contact-fixes`; store/schema.py _m013 explains the outcomes.
"""

from __future__ import annotations

from typing import Any

from .connection import Connection

_COLUMNS = ("kind", "value", "profile_id", "outcome", "normalised", "other_profile",
            "detail", "at")


def contact_fixes(conn: Connection, outcome: str | None = None
                  ) -> list[dict[str, Any]]:
    """The recorded fixes (all, or of one outcome), in the order they were made."""
    where, args = ("WHERE outcome = ?", (outcome,)) if outcome else ("", ())
    return [dict(zip(_COLUMNS, row, strict=True)) for row in conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM contact_fixes {where} ORDER BY id", args)]
