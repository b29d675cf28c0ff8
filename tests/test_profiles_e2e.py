"""The single customer view end to end: a real `kanal serve`, its admin API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.slow


def kanal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kanal_collector", *args],
                          capture_output=True, text=True, timeout=60)


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_profiles_through_serve_admin_api_and_cli(collector: Any, tmp_path: Path) -> None:
    api = f"{collector.url}/api"
    admin = {"Authorization": f"Bearer {collector.admin_key}"}
    send = f"{collector.url}/v1/batch"
    batch = [
        {"type": "page", "anonymousId": "visitor-1", "name": "Home"},
        {"type": "track", "anonymousId": "visitor-1", "event": "Product Viewed",
         "properties": {"category": "shoes"}},
        {"type": "identify", "anonymousId": "visitor-1", "userId": "u-42",
         "traits": {"name": "Ann", "email": "ann@example.com"}},
    ]
    r = requests.post(send, json={"batch": batch}, auth=(collector.public_key, ""), timeout=10)
    assert r.status_code == 200
    r = requests.post(f"{collector.url}/v1/identify", auth=(collector.secret_key, ""),
                      json={"userId": "u-42", "traits": {"email": "ann@example.com"}},
                      timeout=10)
    assert r.status_code == 200

    def by_email() -> Any:
        r = requests.get(f"{api}/profiles/lookup", params={"id": "ANN@example.com"},
                         headers=admin, timeout=10)
        return r.json() if r.status_code == 200 else None

    profile = until(by_email)
    assert profile, "the processor never built the profile"
    kinds = {(i["kind"], i["value"]) for i in profile["identities"]}
    assert kinds == {("anonymous_id", "visitor-1"), ("user_id", "u-42"),
                     ("email", "ann@example.com")}
    assert profile["traits"]["name"] == "Ann"

    # kanal import while serve runs: the processor polls and picks the rows up
    orders = tmp_path / "orders.csv"
    orders.write_text("userId,event,order_id,revenue\nu-42,Order Completed,A1,99.5\n")
    done = kanal("import", str(orders), "--db", collector.db)
    assert done.returncode == 0, done.stderr
    pid = profile["id"]

    def with_order() -> Any:
        r = requests.get(f"{api}/profiles/{pid}", headers=admin, timeout=10)
        return r.json() if r.json()["computed"]["orders"] == 1 else None

    assert until(with_order), "the imported order never reached the profile"
    r = requests.get(f"{api}/profiles/{pid}/timeline", headers=admin, timeout=10)
    assert {e["origin"] for e in r.json()["events"]} == {"web", "server", "store"}
    r = requests.get(f"{api}/profiles", params={"q": "u-4"}, headers=admin, timeout=10)
    assert [p["id"] for p in r.json()["profiles"]] == [pid]
    assert requests.get(f"{api}/profiles/lookup", params={"id": "nobody"}, headers=admin,
                        timeout=10).status_code == 404
    assert requests.get(f"{api}/profiles/{pid}", timeout=10).status_code == 401

    shown = kanal("profiles", "show", "u-42", "--db", collector.db)
    assert shown.returncode == 0, shown.stderr
    assert "user_id       u-42" in shown.stdout and "orders 1, revenue 99.5" in shown.stdout
    export = tmp_path / "export.json"
    kanal("profiles", "export", "visitor-1", "-o", str(export), "--db", collector.db)
    exported = json.loads(export.read_text())
    assert len(exported["events"]) == 5 and exported["id"] == pid

    busy = kanal("profiles", "rebuild", "--db", collector.db)
    assert busy.returncode != 0 and "kanal serve" in busy.stderr

    gone = kanal("forget", "u-42", "--yes", "--db", collector.db)
    assert gone.returncode == 0 and "5 events deleted" in gone.stdout, gone.stdout
    requests.post(f"{collector.url}/v1/track", auth=(collector.secret_key, ""),
                  json={"userId": "u-42", "event": "Came Back"}, timeout=10)
    requests.post(f"{collector.url}/v1/track", auth=(collector.secret_key, ""),
                  json={"userId": "someone-else", "event": "Came Back"}, timeout=10)
    assert until(lambda: requests.get(f"{api}/profiles/lookup", params={"id": "someone-else"},
                                      headers=admin, timeout=10).status_code == 200)
    assert requests.get(f"{api}/profiles/lookup", params={"id": "u-42"}, headers=admin,
                        timeout=10).status_code == 404
    assert [e["body"].get("userId") for e in collector.events()] == ["someone-else"]
