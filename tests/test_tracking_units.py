"""Email tracking without HTTP: tokens, link rewriting, the pixel tag, bot flags."""

from __future__ import annotations

import base64

import pytest

from kanal_collector.tracking import tokens
from kanal_collector.tracking.bots import bot_reason
from kanal_collector.tracking.links import add_pixel, link_target, rewrite_links

K1 = b"k" * 32
K2 = b"q" * 32


def test_token_round_trip_for_every_purpose() -> None:
    for purpose, index in ((tokens.CLICK, 3), (tokens.OPEN, None),
                           (tokens.UNSUBSCRIBE, None), (tokens.PREFERENCES, None)):
        token = tokens.make_token(K1, purpose, 12345, index)
        assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
        assert tokens.read_token([K1], token, purpose) == tokens.Token(purpose, 12345, index)


def test_rotation_newest_signs_all_verify() -> None:
    old = tokens.make_token(K1, tokens.OPEN, 7)
    new = tokens.make_token(K2, tokens.OPEN, 7)
    assert tokens.read_token([K2, K1], old, tokens.OPEN) is not None
    assert tokens.read_token([K2, K1], new, tokens.OPEN) is not None
    assert tokens.read_token([K2], old, tokens.OPEN) is None  # a dropped key


def _flip_last_char(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def _retarget(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[9:11] = index.to_bytes(2, "big")
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


CLICK = tokens.make_token(K1, tokens.CLICK, 42, 0)


@pytest.mark.parametrize(("token", "purpose", "why"), [
    (CLICK, tokens.OPEN, "a click token used as an open token"),
    (tokens.make_token(K1, tokens.OPEN, 42), tokens.UNSUBSCRIBE, "open token to unsubscribe"),
    (tokens.make_token(K1, tokens.UNSUBSCRIBE, 42), tokens.PREFERENCES,
     "outbox id passed off as a profile id"),
    (_retarget(CLICK, 1), tokens.CLICK, "link index tampered"),
    (_flip_last_char(CLICK), tokens.CLICK, "signature altered"),
    (tokens.make_token(b"x" * 32, tokens.CLICK, 42, 0), tokens.CLICK, "signed by another key"),
    (CLICK[:-2], tokens.CLICK, "truncated"),
    (CLICK + "AA", tokens.CLICK, "extended"),
    ("", tokens.CLICK, "empty"),
    ("!!notbase64!!", tokens.CLICK, "not base64"),
    ("é" * 10, tokens.CLICK, "not ascii"),
    ("A" * 500, tokens.CLICK, "too long"),
    (CLICK + "=", tokens.CLICK, "padding is not canonical"),
])
def test_forged_tokens_are_refused(token: str, purpose: int, why: str) -> None:
    assert tokens.read_token([K1], token, purpose) is None, why


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"purpose": 9, "id": 1}, "purpose"),
    ({"purpose": tokens.CLICK, "id": 1}, "index"),
    ({"purpose": tokens.OPEN, "id": 1, "index": 0}, "index"),
    ({"purpose": tokens.OPEN, "id": -1}, "id"),
    ({"purpose": tokens.CLICK, "id": 1, "index": 70000}, "index"),
])
def test_make_token_names_the_bad_argument(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tokens.make_token(K1, **kwargs)


@pytest.mark.parametrize(("href", "expected"), [
    ("https://shop.example/a?x=1&amp;y=2", "https://shop.example/a?x=1&y=2"),
    ("  http://shop.example/a  ", "http://shop.example/a"),
    ("https://shop.example/a\n/b", "https://shop.example/a/b"),
    ("HTTPS://shop.example/", "HTTPS://shop.example/"),
    ("https://shöp.example/ä", "https://xn--shp-tna.example/%C3%A4"),
    ("&#104;ttps://shop.example/", "https://shop.example/"),
    ("mailto:a@example.com", None),
    ("tel:+4612345", None),
    ("#top", None),
    ("/relative", None),
    ("javascript:alert(1)", None),
    ("https:///nohost", None),
    ("ftp://files.example/", None),
    ("https://shop.example/\x01x", None),
    ("https://shop.example/\x00", "https://shop.example/"),
])
def test_link_target(href: str, expected: str | None) -> None:
    assert link_target(href) == expected


def test_rewrite_links_only_http_and_keeps_the_rest() -> None:
    html = (
        '<p><a href="https://shop.example/p?id=1&amp;ref=mail" class="b">Buy</a>'
        "<a href='http://shop.example/x'>x</a>"
        '<a title="a > b" href=https://shop.example/bare>bare</a>'
        '<a href="mailto:help@shop.example">mail</a><a href="tel:+46">call</a>'
        '<a href="#top">top</a><a name="anchor">no href</a>'
        '<a data-kanal-track="off" href="https://shop.example/secret">untracked</a>'
        '<a href="https://t.example/u/abc">own link</a>'
        '<abbr title="https://x.example">not a link</abbr>'
        '<A HREF="https://shop.example/upper">upper</A></p>'
    )
    out, targets = rewrite_links(html, lambda i: f"https://t.example/c/T{i}",
                                 skip_prefix="https://t.example/")
    assert targets == ["https://shop.example/p?id=1&ref=mail", "http://shop.example/x",
                       "https://shop.example/bare", "https://shop.example/upper"]
    assert '<a href="https://t.example/c/T0" class="b">' in out
    assert "<a href=\"https://t.example/c/T1\">" in out
    assert '<a title="a > b" href="https://t.example/c/T2">' in out
    assert '<A HREF="https://t.example/c/T3">' in out
    for kept in ('href="mailto:help@shop.example"', 'href="tel:+46"', 'href="#top"',
                 '<a name="anchor">', 'href="https://shop.example/secret"',
                 'href="https://t.example/u/abc"', '<abbr title="https://x.example">'):
        assert kept in out


def test_pixel_goes_before_the_last_body_end() -> None:
    out = add_pixel("<html><body>hi</BODY ></html>", "https://t.example/o/X.gif")
    assert out.startswith('<html><body>hi<img src="https://t.example/o/X.gif"')
    assert out.endswith("</BODY ></html>")
    assert add_pixel("hi", "https://t/o/X.gif").startswith("hi<img ")


CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


@pytest.mark.parametrize(("ua", "kwargs", "reason"), [
    (CHROME, {}, None),
    (CHROME, {"method": "HEAD"}, "head_request"),
    (None, {}, "no_user_agent"),
    ("", {}, "no_user_agent"),
    ("Mozilla/5.0 (compatible; BingPreview/1.0b)", {}, "link_scanner"),
    ("Barracuda Sentinel (EE)", {}, "link_scanner"),
    ("Mimecast-URL-Protect/1.0", {}, "link_scanner"),
    ("Proofpoint URL Defense", {}, "link_scanner"),
    ("python-requests/2.31", {}, "link_scanner"),
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
     "GoogleImageProxy)", {"opening": True}, "mail_proxy"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
     {"opening": True}, "mail_proxy"),
    ("Googlebot/2.1 (+http://www.google.com/bot.html)", {}, "bot"),
    (CHROME, {"seconds_since_send": 2, "min_click_seconds": 10}, "too_fast"),
    (CHROME, {"seconds_since_send": 60, "min_click_seconds": 10}, None),
    (CHROME, {"opening": True, "seconds_since_send": 1, "min_click_seconds": 10}, None),
])
def test_bot_reason(ua: str | None, kwargs: dict[str, object], reason: str | None) -> None:
    assert bot_reason(ua, **kwargs) == reason  # type: ignore[arg-type]
