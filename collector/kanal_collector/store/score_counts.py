"""People per predicted stage and churn risk, kept as scores are written.

`predict_counts` holds (kind, band) → people: kind 'stage' (every score has one) or
'risk' (scores with a churn risk). Triggers on `predict_scores` keep it, so a fit's
publish, a merge that drops the merged profile's scores and `kanal forget` all count,
and the predictions page reads a few rows instead of counting every customer's score.
"""

from __future__ import annotations

from collections.abc import Sequence

from .connection import Connection
from .dialect import SQLITE

_ADD = ("INSERT INTO predict_counts (kind, band, n) SELECT '{kind}', {row}.{column}, {delta} "
        "WHERE {row}.{column} IS NOT NULL "
        "ON CONFLICT (kind, band) DO UPDATE SET n = predict_counts.n + {delta};")


def _moves(row: str, delta: int) -> str:
    return " ".join(_ADD.format(kind=kind, row=row, column=column, delta=delta)
                    for kind, column in (("stage", "stage"), ("risk", "churn_risk")))


_CHANGED = "OLD.stage IS NOT NEW.stage OR OLD.churn_risk IS NOT NEW.churn_risk"

_SQLITE: Sequence[str] = (
    f"CREATE TRIGGER predict_counts_insert AFTER INSERT ON predict_scores BEGIN "
    f"{_moves('NEW', 1)} END",
    f"CREATE TRIGGER predict_counts_delete AFTER DELETE ON predict_scores BEGIN "
    f"{_moves('OLD', -1)} END",
    f"CREATE TRIGGER predict_counts_update AFTER UPDATE ON predict_scores "
    f"WHEN {_CHANGED} BEGIN {_moves('OLD', -1)} {_moves('NEW', 1)} END",
)

_POSTGRES: Sequence[str] = (
    f"""CREATE FUNCTION kanal_predict_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            {_moves('OLD', -1)}
        END IF;
        IF TG_OP <> 'DELETE' THEN
            {_moves('NEW', 1)}
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER predict_counts AFTER INSERT OR DELETE ON predict_scores "
    "FOR EACH ROW EXECUTE FUNCTION kanal_predict_counts()",
    "CREATE TRIGGER predict_counts_update AFTER UPDATE ON predict_scores FOR EACH ROW "
    f"WHEN ({_CHANGED.replace(' IS NOT ', ' IS DISTINCT FROM ')}) "
    "EXECUTE FUNCTION kanal_predict_counts()",
)


def create(conn: Connection) -> None:
    """Make the table and its triggers, counting the scores there are (migration 23)."""
    conn.execute(conn.dialect.ddl(
        """CREATE TABLE predict_counts (
            kind {TEXT} NOT NULL, band {TEXT} NOT NULL, n {INT} NOT NULL,
            PRIMARY KEY (kind, band)
        ){WITHOUT_ROWID}"""))
    for statement in _SQLITE if conn.dialect.name == SQLITE else _POSTGRES:
        conn.execute(statement)
    conn.execute("INSERT INTO predict_counts (kind, band, n) "
                 "SELECT 'stage', stage, count(*) FROM predict_scores GROUP BY stage")
    conn.execute("INSERT INTO predict_counts (kind, band, n) "
                 "SELECT 'risk', churn_risk, count(*) FROM predict_scores "
                 "WHERE churn_risk IS NOT NULL GROUP BY churn_risk")


def drop(conn: Connection) -> None:
    """Take the triggers (and PostgreSQL's function) away again: the table stays."""
    if conn.dialect.name == SQLITE:
        for name in ("predict_counts_insert", "predict_counts_delete", "predict_counts_update"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        return
    for name in ("predict_counts", "predict_counts_update"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name} ON predict_scores")
    conn.execute("DROP FUNCTION IF EXISTS kanal_predict_counts")


def counts(conn: Connection) -> dict[str, dict[str, int]]:
    """{"stages": {stage: people}, "risks": {churn risk: people}} as stored now."""
    out: dict[str, dict[str, int]] = {"stages": {}, "risks": {}}
    for kind, band, n in conn.execute(
            "SELECT kind, band, n FROM predict_counts WHERE n > 0 ORDER BY kind, band"):
        out["stages" if kind == "stage" else "risks"][str(band)] = int(n)
    return out
