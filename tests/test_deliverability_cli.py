"""The suppression list (CLI and admin API), `kanal email check` with a stubbed resolver,
and the deliverability report (CLI, API, dashboard) against an independent count."""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from deliverability_util import Shop, write_rsa_key
from kanal_testing import db_at

from kanal_collector.channels.dkim import dns_record
from kanal_collector.cli import cli
from kanal_collector.config import Config
from kanal_collector.deliverability import Report, record
from kanal_collector.deliverability.dnscheck import check_domain, report_lines
from kanal_collector.deliverability.report import deliverability_report
from kanal_collector.deliverability.settings import Settings
from kanal_collector.store.db import transaction

DAY = 86_400


def run(*args: str, db: Path) -> Any:
    return CliRunner().invoke(cli, [*args, "--db", db_at(db), "--create-db"],
                              catch_exceptions=False)


def test_suppressions_cli_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "kanal.db"
    source = tmp_path / "old-tool.csv"
    source.write_text("Email,Reason,Detail\nAnn@Example.com,hard bounce,550 user unknown\n"
                      "bob@example.com,,\n", encoding="utf-8")
    r = run("suppressions", "import", str(source), db=db)
    assert r.exit_code == 0, r.output
    assert "Imported 2 address(es); 0 already on the list" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("address,reason\ncy@example.com,manual\nnot-an-address,manual\n"
                   "dan@example.com,no way!\n", encoding="utf-8")
    r = run("suppressions", "import", str(bad), db=db)
    assert r.exit_code == 1
    assert f"{bad}:3: address: 'not-an-address' is not an email address" in r.output
    assert f"{bad}:4: reason:" in r.output and "nothing was imported" in r.output
    assert "cy@example.com" not in run("suppressions", "list", db=db).output
    r = run("suppressions", "import", str(bad), "--skip-invalid", db=db)
    assert "Imported 1 address(es)" in r.output and "skipped 2 bad line(s)" in r.output
    assert run("suppressions", "add", "Dan@Example.com", "--reason", "complaint",
               db=db).output.strip() == "Added dan@example.com (complaint)"
    assert run("suppressions", "remove", "bob@example.com", db=db).exit_code == 0
    r = run("suppressions", "remove", "bob@example.com", db=db)
    assert r.exit_code == 1 and "not on the suppression list" in r.output
    out = tmp_path / "export.csv"
    assert run("suppressions", "export", str(out), db=db).output.strip() == \
        f"Wrote 3 address(es) to {out}"
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["address"], r["reason"], r["source"]) for r in rows] == [
        ("ann@example.com", "hard_bounce", "import"), ("cy@example.com", "manual", "import"),
        ("dan@example.com", "complaint", "cli")]
    assert rows[0]["detail"] == "550 user unknown" and rows[0]["created_at"].endswith("Z")
    # The export imports again unchanged.
    again = run("suppressions", "import", str(out), db=db)
    assert "Imported 0 address(es); 3 already on the list" in again.output
    listed = run("suppressions", "list", "--json", db=db).output.splitlines()
    assert [json.loads(line)["address"] for line in listed] == [
        "ann@example.com", "cy@example.com", "dan@example.com"]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = Shop(tmp_path / "kanal.db")
    try:
        yield s
    finally:
        s.close()


def test_suppressions_admin_api(shop: Shop) -> None:
    admin = shop.world.conn  # keys: create one through the store
    from kanal_collector.store.keys import create_key

    key = create_key(admin, "admin", 0)
    auth = {"Authorization": f"Bearer {key}"}
    c = shop.client
    assert c.get("/api/suppressions").status_code == 401
    r = c.put("/api/suppressions/Ann@Example.com", json={"reason": "manual",
                                                         "detail": "asked"}, headers=auth)
    assert r.status_code == 201 and r.json["address"] == "ann@example.com"
    assert c.put("/api/suppressions/ann@example.com", json={"reason": "complaint"},
                 headers=auth).status_code == 200
    assert c.put("/api/suppressions/nope", json={}, headers=auth).status_code == 400
    assert c.put("/api/suppressions/bo@example.com", json={"reason": "no way!"},
                 headers=auth).status_code == 400
    page = c.get("/api/suppressions?limit=10", headers=auth).json
    assert [s["reason"] for s in page["suppressions"]] == ["complaint"]
    assert page["counts"] == {"complaint": 1} and page["next"] is None
    assert c.get("/api/suppressions/ann@example.com", headers=auth).json["detail"] is None
    assert c.delete("/api/suppressions/ann@example.com", headers=auth).status_code == 204
    assert c.delete("/api/suppressions/ann@example.com", headers=auth).status_code == 404


# -- kanal email check ------------------------------------------------------------------------


class StubResolver:
    """DNS answers from a dict; every question is remembered."""

    def __init__(self, txt: dict[str, list[str]], mx: dict[str, list[str]] | None = None
                 ) -> None:
        self.records, self.mxs, self.asked = txt, mx or {}, []  # type: ignore[var-annotated]

    def txt(self, name: str) -> list[str]:
        self.asked.append(name)
        return self.records.get(name, [])

    def mx(self, name: str) -> list[str]:
        return self.mxs.get(name, [])


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rsa_key(tmp_path_factory.mktemp("dkim") / "k.pem", traditional=True)


def check_config(key_pem: Path) -> Config:
    return Config(sections={
        "channels": {"email": {"host": "email-smtp.eu-west-1.amazonaws.com",
                               "from": "Shop <news@shop.example>", "dkim_selector": "k1",
                               "dkim_private_key_file": str(key_pem)}},
        "deliverability": {"bounces": {"address": "bounces@bounce.shop.example"}}})


def test_email_check_everything_missing(key_pem: Path) -> None:
    findings = check_domain("shop.example", check_config(key_pem), StubResolver({}))
    by_kind = {f.kind: f for f in findings}
    assert set(by_kind) == {"SPF", "DKIM", "DMARC", "MX"}
    assert by_kind["SPF"].name == "bounce.shop.example"  # VERP: SPF is checked there
    assert by_kind["SPF"].expected == "v=spf1 include:amazonses.com ~all"
    assert by_kind["DKIM"].name == "k1._domainkey.shop.example"
    assert by_kind["DKIM"].expected == dns_record(key_pem.read_bytes())
    assert all(not f.ok for f in findings)
    text = "\n".join(report_lines(findings))
    assert "DMARC  _dmarc.shop.example: MISSING" in text
    assert "no DMARC record" in text


def test_email_check_all_good_and_the_usual_mistakes(key_pem: Path) -> None:
    record = dns_record(key_pem.read_bytes())
    # A published key split into strings and with spaces in p= is the same key.
    p = record.split("p=")[1]
    published = f"v=DKIM1; k=rsa; p={p[:100]} {p[100:]}"
    good = StubResolver({
        "bounce.shop.example": ["v=spf1 include:amazonses.com -all"],
        "amazonses.com": ["v=spf1 ip4:199.255.192.0/22 -all"],
        "k1._domainkey.shop.example": [published],
        "_dmarc.shop.example": ["v=DMARC1; p=quarantine; rua=mailto:d@shop.example"],
    }, {"bounce.shop.example": ["kanal.shop.example"]})
    findings = check_domain("shop.example", check_config(key_pem), good)
    assert [f.problems for f in findings] == [[], [], [], []]
    bad = StubResolver({
        "bounce.shop.example": ["v=spf1 include:_spf.google.com +all"],
        "k1._domainkey.shop.example": ["v=DKIM1; k=rsa; p=MIIBIjAN"],
        "_dmarc.shop.example": ["v=DMARC1; p=none", "v=DMARC1; p=reject"],
    })
    problems = {f.kind: f.problems for f in check_domain("shop.example", check_config(key_pem),
                                                         bad)}
    assert problems["SPF"] == ["include:amazonses.com is missing (the relay isn't "
                               "authorized)", "it ends in +all: anyone may send as this domain"]
    assert problems["DKIM"] == ["the published key (p=) is not the configured one"]
    assert problems["DMARC"] == ["more than one DMARC record: receivers ignore them all"]


def test_spf_lookups_are_counted_through_includes(key_pem: Path) -> None:
    records = {"bounce.shop.example": ["v=spf1 include:amazonses.com include:a.example ~all"],
               "a.example": ["v=spf1 " + " ".join(f"include:n{i}.example" for i in range(6))
                             + " ~all"],
               **{f"n{i}.example": ["v=spf1 a mx ~all"] for i in range(6)}}
    spf = check_domain("shop.example", check_config(key_pem), StubResolver(records))[0]
    assert spf.problems == ["20 DNS lookups; SPF allows 10 (permerror)"]


def test_email_check_command_exit_status(tmp_path: Path, key_pem: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from kanal_collector.deliverability import dnscheck

    monkeypatch.setattr(dnscheck, "DnsPythonResolver", lambda: StubResolver({}))
    toml = tmp_path / "kanal.toml"
    toml.write_text(f'[channels.email]\nhost = "smtp.sendgrid.net"\n'
                    f'from = "news@shop.example"\ndkim_selector = "k1"\n'
                    f'dkim_private_key_file = "{key_pem}"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["email", "check", "shop.example", "--config", str(toml),
                                 "--db", db_at(tmp_path / "k.db")])
    assert r.exit_code == 1
    assert "expected: v=spf1 include:sendgrid.net ~all" in r.output
    assert "Error: 3 record(s) missing or wrong" in r.output
    r = CliRunner().invoke(cli, ["email", "check", "not a domain", "--config", str(toml)])
    assert r.exit_code == 1 and "is not a domain name" in r.output


# -- the report, against a count of its own --------------------------------------------------


def test_report_matches_an_independent_count(shop: Shop) -> None:
    rng = random.Random(7)
    settings = Settings()
    domains = ["gmail.com", "outlook.com", "example.com"]
    sent: list[int] = []
    for day in range(4):
        for n in range(12):
            user = f"u{day}-{n}"
            oid = shop.sent(user, f"{user}@{rng.choice(domains)}",
                            channel=rng.choice(["email", "marketing"]),
                            journey=rng.choice(["cart", "welcome", None]))
            sent.append(oid)
        shop.world.clock.advance(DAY)
    now_ms = int(shop.world.clock.now() * 1000)
    with transaction(shop.conn):
        for i, oid in enumerate(rng.sample(sent, 20)):
            row = shop.world.row(oid)
            kind = ["hard", "soft", "complaint"][i % 3]
            record(shop.conn, Report(kind, row.recipient, "test", f"e{i}", outbox_id=oid),
                   settings, now_ms)
    doc = deliverability_report(shop.conn, since_ms=0, until_ms=now_ms)
    # The same figures, counted here from the outbox and the reports.
    expect: dict[str, dict[Any, dict[str, int]]] = {
        d: defaultdict(lambda: {"sent": 0, "hard": 0, "soft": 0, "complaints": 0})
        for d in ("day", "channel", "journey", "domain")}
    rows = {r[0]: r for r in shop.conn.execute(
        "SELECT id, sent_at, channel, journey, recipient FROM outbox WHERE state = 'sent'")}
    feedback = shop.conn.execute("SELECT outbox_id, kind FROM email_feedback").fetchall()
    for oid, (_, sent_at, channel, journey, recipient) in rows.items():
        keys = {"day": sent_at // 86_400_000, "channel": channel, "journey": journey or "(none)",
                "domain": recipient.split("@")[1]}
        for dimension, key in keys.items():
            expect[dimension][key]["sent"] += 1
            for f_oid, kind in feedback:
                if f_oid == oid:
                    name = "complaints" if kind == "complaint" else kind
                    expect[dimension][key][name] += 1
    for dimension in ("channel", "journey", "domain"):
        got = {r["key"]: {k: r[k] for k in ("sent", "hard", "soft", "complaints")}
               for r in doc[f"by_{dimension}"]}
        assert got == dict(expect[dimension])
        for r in doc[f"by_{dimension}"]:
            assert r["bounce_rate"] == pytest.approx((r["hard"] + r["soft"]) / r["sent"])
            assert r["complaint_rate"] == pytest.approx(r["complaints"] / r["sent"])
    days = [d for d in doc["days"] if d["sent"]]
    assert [d["sent"] for d in days] == [expect["day"][k]["sent"] for k in sorted(expect["day"])]
    assert doc["totals"]["sent"] == 48 and doc["totals"]["bounces"] + \
        doc["totals"]["complaints"] == 20
    assert [t["value"] for t in doc["thresholds"] if t["metric"] == "complaint_rate"] == [
        0.003, 0.001]
    # The CLI, the API and the dashboard show the same document.
    r = CliRunner().invoke(cli, ["report", "deliverability", "--since", "1970-01-02",
                                 "--format", "json", "--by", "domain", "--db",
                                 shop.world.log.db.target])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["by_domain"] == doc["by_domain"]
    csv_out = CliRunner().invoke(cli, ["report", "deliverability", "--since", "30d",
                                       "--format", "csv", "--by", "channel", "--db",
                                       shop.world.log.db.target]).output
    header = next(csv.reader(io.StringIO(csv_out)))
    assert header == ["channel", "sent", "hard", "soft", "complaints", "bounce_rate",
                      "complaint_rate"]


def test_dashboard_draws_the_thresholds(shop: Shop) -> None:
    from kanal_collector.store.keys import create_key

    oid = shop.sent("ann", "ann@gmail.com")
    with transaction(shop.conn):
        record(shop.conn, Report("complaint", "ann@gmail.com", "test", "c1", outbox_id=oid),
               Settings(), int(shop.world.clock.now() * 1000))
    key = create_key(shop.conn, "admin", 0)
    c = shop.client
    page = c.get("/dashboard/login")
    token = page.headers["Set-Cookie"].split("kanal_login=")[1].split(";")[0]
    c.post("/dashboard/login", data={"key": key, "login_csrf": token, "next": "/dashboard/"},
           headers={"Origin": "http://localhost"})
    html = c.get("/dashboard/deliverability?since=7d").get_data(as_text=True)
    assert 'data-threshold="0.003"' in html and "Gmail: never reach a 0.3% spam rate" in html
    assert 'data-threshold="0.05"' in html
    assert 'class="dot series-0"' in html and 'data-value="1"' in html  # 1 of 1: 100 %
    assert "support.google.com/a/answer/81126" in html
    data = json.loads(html.split('id="data">')[1].split("</script>")[0])
    assert data["totals"]["complaints"] == 1


def test_forget_deletes_the_reports_and_keeps_the_suppression(shop: Shop) -> None:
    from kanal_collector.profiles.privacy import forget

    oid = shop.sent("ann", "ann@example.com")
    with transaction(shop.conn):
        record(shop.conn, Report("hard", "ann@example.com", "test", "h1", outbox_id=oid),
               Settings(), 0)
    assert len(shop.feedback()) == 1
    forget(shop.conn, "ann", 0)
    assert shop.feedback() == []
    assert shop.suppressed() == {"ann@example.com": "hard_bounce"}
