"""Marketing costs: set, list, delete, kanal.toml's [costs], and their validation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kanal_testing import db_at

from kanal_collector.config import Config
from kanal_collector.errors import ConfigError
from kanal_collector.reports.costs import (
    config_costs,
    costs_for_report,
    delete_cost,
    list_costs,
    set_cost,
)
from kanal_collector.store.db import Database
from kanal_collector.store.schema import migrate

NOW = 1_700_000_000_000
CONFIG = Config(sections={"costs": {
    "currency": "eur",
    "channel": {"SMS": 120.0, "email": 10},
    "campaign": {"spring_sale": 500},
    "journey": {"win_back": 50},
}})


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Any]:
    db = Database(db_at(tmp_path / "k.db"), synchronous="OFF")
    migrate(db.conn())
    yield db.conn()
    db.close()


def test_set_list_delete(conn: Any) -> None:
    assert list_costs(conn) == []
    set_cost(conn, "campaign", " spring_sale ", 250, "usd", NOW)
    set_cost(conn, "channel", "SMS", 99.5, None, NOW)
    assert list_costs(conn) == [
        {"dimension": "channel", "key": "sms", "amount": 99.5, "currency": None,
         "source": "api"},
        {"dimension": "campaign", "key": "spring_sale", "amount": 250.0, "currency": "USD",
         "source": "api"},
    ]
    set_cost(conn, "channel", "sms", 80, "EUR", NOW + 1)  # replaces
    assert conn.execute("SELECT amount, currency, updated_at FROM costs "
                        "WHERE dimension = 'channel'").fetchall() == [(80.0, "EUR", NOW + 1)]
    assert delete_cost(conn, "channel", "Sms") is True
    assert delete_cost(conn, "channel", "sms") is False
    assert [c["key"] for c in list_costs(conn)] == ["spring_sale"]


def test_config_costs_and_api_override(conn: Any) -> None:
    assert config_costs(CONFIG) == {
        ("channel", "sms"): (120.0, "EUR"), ("channel", "email"): (10.0, "EUR"),
        ("campaign", "spring_sale"): (500.0, "EUR"), ("journey", "win_back"): (50.0, "EUR")}
    set_cost(conn, "channel", "sms", 80, None, NOW)
    set_cost(conn, "journey", "welcome", 5, None, NOW)
    assert list_costs(conn, CONFIG) == [
        {"dimension": "channel", "key": "email", "amount": 10.0, "currency": "EUR",
         "source": "config"},
        {"dimension": "channel", "key": "sms", "amount": 80.0, "currency": None,
         "source": "api"},
        {"dimension": "campaign", "key": "spring_sale", "amount": 500.0, "currency": "EUR",
         "source": "config"},
        {"dimension": "journey", "key": "welcome", "amount": 5.0, "currency": None,
         "source": "api"},
        {"dimension": "journey", "key": "win_back", "amount": 50.0, "currency": "EUR",
         "source": "config"},
    ]
    assert costs_for_report(conn, CONFIG) == {
        ("channel", "sms"): 80.0, ("channel", "email"): 10.0,
        ("campaign", "spring_sale"): 500.0, ("journey", "win_back"): 50.0,
        ("journey", "welcome"): 5.0}
    # deleting the API's cost brings the file's back
    assert delete_cost(conn, "channel", "sms")
    assert costs_for_report(conn, CONFIG)[("channel", "sms")] == 120.0
    assert costs_for_report(conn, None) == {("journey", "welcome"): 5.0}
    assert costs_for_report(conn, Config()) == {("journey", "welcome"): 5.0}


@pytest.mark.parametrize(("args", "message"), [
    (("source", "x", 1.0, None), "dimension must be one of channel, campaign, journey"),
    (("channel", "  ", 1.0, None), "key must be a non-empty channel name"),
    (("channel", "x" * 201, 1.0, None), "at most 200 characters"),
    (("channel", "sms", -1, None), "at least 0"),
    (("channel", "sms", math.inf, None), "finite"),
    (("channel", "sms", math.nan, None), "finite"),
    (("channel", "sms", True, None), "amount must be a number"),
    (("channel", "sms", "12", None), "amount must be a number"),
    (("channel", "sms", 1.0, "euro"), "three-letter code"),
    (("channel", "sms", 1.0, "E1R"), "three-letter code"),
])
def test_set_cost_validation(conn: Any, args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        set_cost(conn, *args, NOW)
    assert list_costs(conn) == []


def test_delete_cost_validation(conn: Any) -> None:
    with pytest.raises(ValueError, match="dimension must be one of"):
        delete_cost(conn, "medium", "x")


@pytest.mark.parametrize(("table", "message"), [
    ({"medium": {"cpc": 1}}, r"costs\.medium is not a dimension"),
    ({"channel": 5}, r"costs\.channel must be a table"),
    ({"channel": {"sms": -5}}, r"costs\.channel\.sms: amount must be a finite number"),
    ({"campaign": {"x": "100"}}, r"costs\.campaign\.x: amount must be a number"),
    ({"currency": "euros"}, r"costs\.currency: currency must be a three-letter code"),
])
def test_config_errors(conn: Any, table: dict[str, Any], message: str) -> None:
    config = Config(sections={"costs": table})
    with pytest.raises(ConfigError, match=message):
        costs_for_report(conn, config)
    with pytest.raises(ConfigError, match=message):
        list_costs(conn, config)
