"""`kanal audiences list|status|sync` (and `--dry-run`), `kanal plugins --check`: output,
exit codes and one-line refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from audiences_util import MetaRecorder, Shop, meta_toml
from click.testing import CliRunner, Result

from kanal_collector.cli import cli


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path)
    s.person("ada")
    s.person("bob", consent=False)
    yield s
    s.close()


def kanal(shop: Shop, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", shop.db,
                                    "--config", str(shop.tmp / "kanal.toml")])


def test_sync_list_and_status(shop: Shop) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        recorder = MetaRecorder(mock)
        result = kanal(shop, "audiences", "sync", "vip_ads")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "vip_ads: syncing to meta…", "  added 1",
        "vip_ads: done: 1 added, 0 removed, 0 refused in 1 batch(es); not sent: 1 without "
        "advertising consent"]
    assert len(recorder.calls) == 1
    listed = kanal(shop, "audiences", "list")
    assert listed.exit_code == 0
    assert listed.output.startswith("vip_ads\tmeta\tsegment vips\tok\t1 members\t"
                                    "waiting +0/-0\t0 refused\tlast sync ")
    status = kanal(shop, "audiences", "status", "vip_ads")
    assert "  not sent (no consent): 1" in status.output
    assert "  members 1; waiting to be added 0, removed 0" in status.output
    data = json.loads(kanal(shop, "audiences", "status", "vip_ads", "--json").output)
    assert data["members"] == 1 and data["runs"][0]["reason"] == "manual"


def test_dry_run_writes_what_would_be_sent_and_changes_nothing(shop: Shop) -> None:
    out = shop.tmp / "plan.jsonl"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        recorder = MetaRecorder(mock)
        result = kanal(shop, "audiences", "sync", "vip_ads", "--dry-run", str(out))
        assert recorder.calls == []
    assert result.exit_code == 0, result.output
    assert result.output == (f"vip_ads: would add 1 and remove 0 row(s); written to {out} "
                             "(nothing was sent)\n")
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["action"] == "add" and line["rows"] == 1
    request = line["requests"][0]
    assert request["method"] == "POST" and request["url"].endswith("/2385000/users")
    assert request["body"]["payload"]["schema"] == ["EMAIL"]
    assert "EAAtoken" not in out.read_text()  # credentials are left out
    assert "ada@example.com" not in out.read_text()
    assert shop.states() == []  # nothing changed
    bad = kanal(shop, "audiences", "sync", "vip_ads", "--dry-run", str(shop.tmp / "no/x"))
    assert bad.exit_code == 1 and bad.output.startswith(
        f"Error: can't write {shop.tmp / 'no/x'}: No such file or directory")
    # what a real sync then sends is exactly that
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        recorder = MetaRecorder(mock)
        assert kanal(shop, "audiences", "sync", "vip_ads").exit_code == 0
    assert recorder.calls[0][1] == request["body"]["payload"]


def test_refusals_are_one_line(shop: Shop) -> None:
    result = kanal(shop, "audiences", "sync", "nope")
    assert result.exit_code == 1
    assert result.output == ("Error: no audience named 'nope' (audiences: vip_ads; add "
                             "[audiences.NAME] to kanal.toml)\n")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "https://graph.facebook.com/v25.0/2385000/users",
                 status=400, json={"error": {"message": "Invalid OAuth access token.",
                                             "type": "OAuthException", "code": 190}})
        result = kanal(shop, "audiences", "sync", "vip_ads")
    assert result.exit_code == 1
    last = result.output.splitlines()[-1]
    assert last.startswith("Error: vip_ads: Meta answered 400 (error 190): Invalid OAuth "
                           "access token.; what is left waits, and `kanal serve` tries "
                           "again at ")
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "https://graph.facebook.com/v25.0/2385000/users",
                 status=503, json={"error": {"message": "down", "code": 2}})
        result = kanal(shop, "audiences", "sync", "vip_ads", "--retries", "0")
    assert result.exit_code == 1 and "Meta answered 503 (error 2): down" in result.output
    assert "Traceback" not in result.output
    shop.configure(meta_toml(enabled=False))
    result = kanal(shop, "audiences", "sync", "vip_ads")
    assert result.output == ("Error: audience 'vip_ads' is disabled (enabled = false in "
                             "kanal.toml)\n")


def test_a_bad_table_is_one_line_everywhere(shop: Shop) -> None:
    (shop.tmp / "kanal.toml").write_text(meta_toml().replace("access_token", "acess_token"))
    for args in (["audiences", "list"], ["plugins", "--check"]):
        result = kanal(shop, *args)
        assert result.exit_code == 1
        assert result.output == ("Error: unknown key audiences.vip_ads.acess_token "
                                 "(destination type meta); did you mean access_token?\n")


def test_plugins_check_resolves_secrets(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    (shop.tmp / "kanal.toml").write_text(
        meta_toml().replace('"EAAtoken"', '{ env = "META_TOKEN" }'))
    monkeypatch.delenv("META_TOKEN", raising=False)
    result = kanal(shop, "plugins", "--check")
    assert result.exit_code == 1
    assert result.output == ("Error: [audiences.vip_ads].access_token: environment "
                             "variable META_TOKEN is not set\n")
    monkeypatch.setenv("META_TOKEN", "EAA")
    result = kanal(shop, "plugins", "--check")
    assert result.exit_code == 0
    assert "  meta\tfrom kanal.destinations\t[audiences.…]: vip_ads" in result.output
    assert result.output.endswith("All configured channels and audiences are valid.\n")


def test_no_audiences(tmp_path: Path) -> None:
    shop = Shop(tmp_path, "db = 'kanal.db'\n")
    try:
        result = kanal(shop, "audiences", "list")
        assert result.exit_code == 0
        assert result.output.startswith("no audiences: add [audiences.NAME] tables")
    finally:
        shop.close()


def test_serve_refuses_a_bad_audience_in_one_line(shop: Shop,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (shop.tmp / "kanal.toml").write_text(
        meta_toml().replace('"EAAtoken"', '{ env = "META_TOKEN" }'))
    monkeypatch.delenv("META_TOKEN", raising=False)
    result = kanal(shop, "serve", "--port", "0")
    assert result.exit_code == 1
    assert result.output == ("Error: [audiences.vip_ads].access_token: environment "
                             "variable META_TOKEN is not set\n")
