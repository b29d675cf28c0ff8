"""Is an open or a click a person, or a bot, a link scanner or a mail-privacy proxy?

Flagged events are kept (with `properties.bot = true` and `bot_reason`) and never
trigger journeys. Without network lists (e.g. Apple Mail Privacy Protection's address
ranges) only request signals are used:

    head_request   scanners check a link with HEAD; a person's browser uses GET
    no_user_agent  a request without a User-Agent
    link_scanner   a known security gateway or HTTP library (Barracuda, Mimecast,
                   Proofpoint, Microsoft Safe Links "BingPreview", curl, …)
    mail_proxy     an image proxy that fetches pictures for the reader (opens only:
                   GoogleImageProxy, YahooMailProxy)
    bot            a user agent the user-agents parser calls a bot or crawler
    too_fast       a click sooner after sending than `bot_click_seconds`
"""

from __future__ import annotations

import re

from ..ingest.enrich import describe_user_agent

_SCANNERS = re.compile(
    r"barracuda|mimecast|proofpoint|bingpreview|safelinks|safe ?links|messagelabs|"
    r"symantec|forcepoint|trend ?micro|ironport|zscaler|sophos|fortiguard|mailscanner|"
    r"cloudmark|spamtitan|hornetsecurity|vade ?secure|mailcontrol|appriver|"
    r"python-requests|python-urllib|aiohttp|httpx|curl/|wget/|go-http-client|"
    r"libwww-perl|okhttp|apache-httpclient|java/|headlesschrome|phantomjs|"
    r"\bscanner\b|linkcheck|link ?preview",
    re.IGNORECASE,
)
_MAIL_PROXIES = re.compile(r"googleimageproxy|yahoomailproxy|ymailproxy", re.IGNORECASE)


def bot_reason(user_agent: str | None, *, method: str = "GET", opening: bool = False,
               seconds_since_send: float | None = None,
               min_click_seconds: float = 0.0) -> str | None:
    """Why this request looks automated, or None when it looks like a person."""
    if method.upper() == "HEAD":
        return "head_request"
    ua = (user_agent or "").strip()
    if not ua:
        return "no_user_agent"
    if opening and _MAIL_PROXIES.search(ua):
        return "mail_proxy"
    if _SCANNERS.search(ua):
        return "link_scanner"
    if describe_user_agent(ua)["bot"]:
        return "bot"
    if (not opening and seconds_since_send is not None
            and seconds_since_send < min_click_seconds):
        return "too_fast"
    return None
