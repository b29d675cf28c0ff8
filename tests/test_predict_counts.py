"""People per predicted stage and churn risk (store/score_counts.py), kept by triggers,
against the scores counted one by one: scores written, rewritten, dropped and cleared at
random through store/predict.py, and rows changed and deleted directly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from kanal_testing import db_at

from kanal_collector.store import predict as store
from kanal_collector.store.db import Database, transaction
from kanal_collector.store.schema import migrate

STAGES = ("new", "active", "at_risk", "lapsed")
RISKS = (None, "low", "medium", "high")


def _counted(conn: Any) -> dict[str, dict[str, int]]:
    stages = {str(s): int(n) for s, n in conn.execute(
        "SELECT stage, count(*) FROM predict_scores GROUP BY stage")}
    risks = {str(r): int(n) for r, n in conn.execute(
        "SELECT churn_risk, count(*) FROM predict_scores WHERE churn_risk IS NOT NULL "
        "GROUP BY churn_risk")}
    return {"stages": stages, "risks": risks}


def _row(rng: random.Random, pid: int) -> dict[str, Any]:
    return {"profile_id": pid, "stage": rng.choice(STAGES), "churn_risk": rng.choice(RISKS),
            "p_active": 0.5, "expected_90": 1.0, "expected_365": 2.0,
            "predicted_value": 10.0, "historic_value": 5.0, "next_order_at": None,
            "recency_score": 1, "frequency_score": 2, "monetary_score": 3, "inputs": {}}


def test_kept_counts_equal_the_scores(tmp_path: Path) -> None:
    rng = random.Random(5)
    db = Database(db_at(tmp_path / "kanal.db"))
    try:
        conn = db.conn()
        migrate(conn)
        assert store.score_counts(conn) == {"stages": {}, "risks": {}}
        for turn in range(40):
            with transaction(conn):
                roll = rng.random()
                if roll < 0.5:
                    fit = turn + 1
                    store.put_scores(conn, fit, [_row(rng, rng.randint(1, 60))
                                                 for _ in range(rng.randint(1, 30))])
                elif roll < 0.65:
                    store.delete_scores(conn, rng.sample(range(1, 61), 10))
                elif roll < 0.75:
                    conn.execute("UPDATE predict_scores SET churn_risk = NULL "
                                 "WHERE profile_id % 3 = 0")
                elif roll < 0.85:
                    conn.execute("UPDATE predict_scores SET stage = 'lapsed', "
                                 "churn_risk = 'high' WHERE profile_id % 4 = 1")
                elif roll < 0.95:
                    store.delete_stale_scores(conn, turn)
                else:
                    store.clear_scores(conn)
            assert store.score_counts(conn) == _counted(conn), turn
        assert sum(store.score_counts(conn)["stages"].values()) == int(
            conn.execute("SELECT count(*) FROM predict_scores").fetchone()[0]) > 0
    finally:
        db.close()
