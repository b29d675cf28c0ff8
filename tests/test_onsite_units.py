"""On-site pieces on their own: campaign files and their checks, the sanitiser, tickets,
arms, settings, the `kanal onsite` and `kanal webpush` commands."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from kanal_collector.cli import cli
from kanal_collector.config import load_config
from kanal_collector.errors import ConfigError
from kanal_collector.journeys.definition import parse_journey
from kanal_collector.journeys.errors import JourneyFileError
from kanal_collector.messages import DefinitionError, parse_message
from kanal_collector.onsite.campaigns import CampaignError, parse_campaign
from kanal_collector.onsite.catalog import load_file
from kanal_collector.onsite.content import UnsafeContent, safe_url, sanitize
from kanal_collector.onsite.settings import OnsiteSettings
from kanal_collector.onsite.signing import read, sign

BAD = """\
name: spring
message: sale
layout: popup
position: left
pages: {include: ["sale/*"]}
devices: [desktop, watch]
show: {delay: soon, scroll: 150}
frequency: hourly
holdout: 100
hide_if: {trait: vip, eqq: true}
colour: red
"""


def test_campaign_problems_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text(BAD)
    with pytest.raises(CampaignError) as info:
        load_file(path)
    text = str(info.value)
    for line, where, what in [
        (3, "layout", "one of banner, modal, slide_in, slot, not 'popup'"),
        (5, "pages.include[0]", "a path glob starting with /"),
        (6, "devices[1]", "one of desktop, mobile, tablet, not 'watch'"),
        (7, "show.delay", "a duration like 5s"),
        (7, "show.scroll", "a number from 1 to 100, not 150"),
        (8, "frequency", "one of visit, day, ever, always, not 'hourly'"),
        (9, "holdout", "a number from 0 to 99, not 100"),
        (10, "hide_if", "eqq"),
        (11, "colour", "unknown key colour"),
    ]:
        assert f"{path}:{line}: {where}: " in text and what in text, (where, text)


def test_a_good_campaign() -> None:
    campaign = parse_campaign({
        "name": "promo", "layout": "slot", "slot": "home-hero", "message": "sale",
        "pages": {"include": ["/", "/shop/*"], "exclude": ["/shop/checkout*"]},
        "holdout": 20, "arms": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1,
                                                             "message": "sale_b"}]})
    assert campaign.on_page("/") and campaign.on_page("/shop/mugs")
    assert not campaign.on_page("/shop/checkout/pay") and not campaign.on_page("/about")
    assert campaign.messages == {"sale", "sale_b"}
    got = [campaign.arm_for(f"p{i}") for i in range(4000)]
    counts = {name: sum(1 for a in got if (a.name if a else "holdout") == name)
              for name in ("holdout", "a", "b")}
    # 20 % held out; the rest 3:1 — within a few per cent of that for 4,000 people.
    assert abs(counts["holdout"] / 4000 - 0.20) < 0.03
    assert abs(counts["a"] / (counts["a"] + counts["b"]) - 0.75) < 0.03
    assert got[:50] == [campaign.arm_for(f"p{i}") for i in range(50)]  # stable


def test_onsite_message_content_is_checked() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_message({"name": "x", "onsite": {"form": {"emial": True, "submit": 3}}})
    text = str(info.value)
    assert "onsite.form.emial: unknown key emial" in text
    assert "onsite.form.submit: a string" in text
    assert "onsite.form: a form asks for email: true, phone: true, or both" in text
    assert "onsite.form.consent: required" in text
    with pytest.raises(DefinitionError, match="onsite needs a title, a body or a form"):
        parse_message({"name": "x", "onsite": {"button": "Go"}})
    message = parse_message({"name": "x", "onsite": {"body": "<p>{{ traits.n }}</p>"}})
    assert message.has_content("onsite")
    rendered = message.render("onsite", traits={"n": "<b>"})
    assert rendered.content["body"] == "<p>&lt;b&gt;</p>"  # the body is autoescaped


@pytest.mark.parametrize("html, kept", [
    ("<p>Hi</p><script>alert(1)</script>", "<p>Hi</p>"),
    ("<img src=x onerror=alert(1)>", '<img src="x">'),
    ("<a href=\"javascript:alert(1)\">x</a>", '<a rel="noopener noreferrer">x</a>'),
    ("<a href=\"/sale\" onclick=\"x()\">sale</a>", '<a href="/sale" rel="noopener noreferrer">'
                                                    'sale</a>'),
    ("<iframe src=//evil.example></iframe><p>ok</p>", "<p>ok</p>"),
    ("<svg><script>alert(1)</script></svg>", ""),
    ("<p style=\"background:url(javascript:x)\">x</p>", "<p>x</p>"),
    ("<form action=//evil><input name=q></form>", ""),
    ("<img src=\"data:text/html,<script>alert(1)</script>\">", "<img>"),
    ("<table><tr><td valign=top><strong>Mug</strong></td></tr></table>",
     '<table><tbody><tr><td valign="top"><strong>Mug</strong></td></tr></tbody></table>'),
])
def test_sanitiser(html: str, kept: str) -> None:
    assert sanitize(html) == kept


def test_sanitiser_guard_refuses_what_slips_through() -> None:
    import kanal_collector.onsite.content as content

    original = content.nh3.clean
    content.nh3.clean = lambda html, **kw: html  # type: ignore[assignment] # a broken one
    try:
        with pytest.raises(UnsafeContent):
            sanitize("<img src=x onerror=alert(1)>")
        with pytest.raises(UnsafeContent):
            sanitize("<a href='javascript:x'>x</a>")
        assert sanitize("<p>a &lt;b onclick=x&gt;</p>") == "<p>a &lt;b onclick=x&gt;</p>"
    finally:
        content.nh3.clean = original  # type: ignore[assignment]


@pytest.mark.parametrize("url, ok", [
    ("/sale", True), ("https://shop.example/x", True), ("http://shop.example", True),
    ("//evil.example/x", False), ("javascript:alert(1)", False), ("data:text/html,x", False),
    ("/\\evil.example", False), ("mailto:x@example.com", False), ("", False),
])
def test_safe_urls(url: str, ok: bool) -> None:
    assert (safe_url(url) is not None) is ok


def test_tickets() -> None:
    key = b"k" * 32
    token = sign(key, "show", 1000, {"c": "promo", "a": "b1"})
    assert read(key, token, "show", now_ms=2000, max_age_ms=5000)["c"] == "promo"
    assert read(key, token, "form", now_ms=2000, max_age_ms=5000) is None  # purpose
    assert read(key, token, "show", now_ms=9000, max_age_ms=5000) is None  # too old
    assert read(key, token, "show", now_ms=500, max_age_ms=5000) is None  # from the future
    assert read(b"x" * 32, token, "show", now_ms=2000, max_age_ms=5000) is None
    body, mac = token.split(".")
    assert read(key, body[:-2] + "AA." + mac, "show", now_ms=2000, max_age_ms=5000) is None
    # Another spelling of the same bytes (the spare bits of the last character) is
    # refused too: events are keyed by the ticket's text.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = alphabet[alphabet.index(mac[-1]) + 1]  # 16 bytes: the last 4 bits are spare
    assert read(key, f"{body}.{mac[:-1]}{spare}", "show", now_ms=2000,
                max_age_ms=5000) is None
    for junk in (None, 3, "", "a.b.c", "!!.??", "x" * 5000):
        assert read(key, junk, "show", now_ms=2000, max_age_ms=5000) is None


def test_journey_expires_only_for_onsite() -> None:
    text = "trigger: {event: E}\nsteps:\n  - send: m\n    channel: %s\n    expires: 3d\n"
    assert parse_journey(text % "onsite", name="j").steps["1"].spec["expires"] == 259_200_000
    with pytest.raises(JourneyFileError, match=r"5: steps\[0\].expires: only for channel: "
                                               "onsite"):
        parse_journey(text % "email", name="j")


def test_onsite_is_a_channel_whatever_the_config_names(tmp_path: Path) -> None:
    from kanal_collector.journeys.checker import References
    from kanal_collector.journeys.references import references_for
    from kanal_collector.messages.eligibility import channel_info

    # Only an email channel configured: `onsite` needs no [channels] table of its own.
    path = tmp_path / "kanal.toml"
    path.write_text('[channels.news]\ntype = "email"\nhost = "127.0.0.1"\n'
                    'from = "Shop <news@shop.example>"\n')
    refs = references_for(load_config(path=path), {"m": ["onsite", "email"]})
    assert refs.channels == {"news": "email", "onsite": "onsite"}
    text = "trigger: {event: E}\nsteps:\n  - send: m\n    channel: %s\n"
    assert parse_journey(text % "onsite", name="j", references=refs).steps["1"]
    with pytest.raises(JourneyFileError, match="no channel named 'email'"):
        parse_journey(text % "email", name="j", references=refs)
    # A message without on-site content can't be sent there.
    no_onsite = References(messages={"m": ["email"]}, channels=refs.channels)
    with pytest.raises(JourneyFileError, match="has no onsite content"):
        parse_journey(text % "onsite", name="j", references=no_onsite)
    # The evaluator's channels are the dispatcher's channel objects: onsite is among them.
    info = channel_info("onsite", {"news": object()})
    assert info is not None and (info.kind, info.recipient_identity) == ("onsite", None)


def test_settings_are_registered_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "kanal.toml"
    path.write_text(textwrap.dedent("""\
        [onsite]
        form_min_seconds = 2
        confirm_ttl = "3d"
        confirm_page = "https://shop.example/confirm"
        [channels.webpush]
        vapid_private_key = { env = "VAPID" }
        subject = "mailto:ops@shop.example"
        """))
    config = load_config(path, environ={})
    with pytest.raises(ConfigError, match="environment variable VAPID is not set"):
        OnsiteSettings.from_config(config)
    import os

    os.environ["VAPID"] = "tCjF9Iqp2iC7p3Y052KtTJIRhlKCHQoYFe4dBSLngwo"
    try:
        settings = OnsiteSettings.from_config(config)
    finally:
        del os.environ["VAPID"]
    assert settings.form_min_ms == 2000 and settings.confirm_ttl_ms == 3 * 86_400_000
    assert settings.webpush is not None and settings.webpush.public_key.startswith("BNTo")
    path.write_text("[onsite]\nform_min_secs = 2\n")
    with pytest.raises(ConfigError, match="did you mean onsite.form_min_seconds"):
        load_config(path, environ={})
    path.write_text("[onsite]\nconfirm_page = \"shop.example\"\n")
    with pytest.raises(ConfigError, match="onsite.confirm_page: a URL"):
        load_config(path, environ={})


def test_webpush_keys_command(tmp_path: Path) -> None:
    made = CliRunner().invoke(cli, ["webpush", "keys"])
    assert made.exit_code == 0, made.output
    private = made.output.split("KANAL_VAPID_PRIVATE_KEY=")[1].split()[0]
    public = made.output.rsplit(": ", 1)[1].strip()
    config = tmp_path / "kanal.toml"
    config.write_text("[channels.webpush]\nvapid_private_key = { env = \"K\" }\n"
                      "subject = \"mailto:a@shop.example\"\n")
    shown = CliRunner(env={"K": private}).invoke(
        cli, ["webpush", "keys", "--show", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert shown.output.strip() == f"webpush: public key {public}"
    bad = CliRunner(env={"K": "not a key"}).invoke(
        cli, ["webpush", "keys", "--show", "--config", str(config)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "[channels.webpush]: vapid_private_key: not a P-256 private key" in bad.output


def test_onsite_validate_command(tmp_path: Path) -> None:
    (tmp_path / "messages").mkdir()
    (tmp_path / "messages" / "sale.yaml").write_text("onsite: {title: Sale}\n")
    (tmp_path / "messages" / "mail.yaml").write_text("email: {subject: Hi, text: x}\n")
    (tmp_path / "onsite").mkdir()
    (tmp_path / "onsite" / "a.yaml").write_text("message: sale\nlayout: banner\n")
    config = tmp_path / "kanal.toml"
    config.write_text(f"[messages]\nmessages_dir = \"{tmp_path / 'messages'}\"\n"
                      f"[onsite]\ndir = \"{tmp_path / 'onsite'}\"\n")
    ok = CliRunner().invoke(cli, ["onsite", "validate", "--config", str(config)])
    assert ok.exit_code == 0 and "1 campaign(s) OK" in ok.output, ok.output
    (tmp_path / "onsite" / "b.yaml").write_text("message: mail\nlayout: modal\n")
    (tmp_path / "onsite" / "c.yaml").write_text("message: nope\nlayout: slot\n")
    bad = CliRunner().invoke(cli, ["onsite", "validate", "--config", str(config)])
    assert bad.exit_code == 1
    assert f"{tmp_path / 'onsite' / 'b.yaml'}:1: message: message 'mail' has no onsite " \
           "content" in bad.output
    assert f"{tmp_path / 'onsite' / 'c.yaml'}:1: slot: the slot's name" in bad.output
    listed = CliRunner().invoke(cli, ["onsite", "list", "--config", str(config), "--dir",
                                      str(tmp_path / "onsite" / "nothing")])
    assert listed.exit_code == 0


def test_the_examples_are_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "examples"
    result = CliRunner(env={"KANAL_MESSAGES_DIR": str(root / "messages"),
                            "KANAL_ONSITE_DIR": str(root / "onsite")}).invoke(
        cli, ["onsite", "validate", "--db", str(root / "no.db")])
    assert result.exit_code == 0, result.output
    assert "1 campaign(s) OK" in result.output
