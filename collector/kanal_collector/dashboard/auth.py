"""Dashboard sign-in: sessions, CSRF tokens, same-origin checks, a login rate limit.

- Signing in takes an admin key. The browser gets a random token in the `kanal_session`
  cookie (HttpOnly, SameSite=Strict, Path=/dashboard, Secure over https, 12 hours); the
  database keeps only its SHA-256 with the key's id, so revoking the key ends the session.
- Every session has a CSRF token, embedded in its pages; a POST must carry it (form field
  `csrf` or header `X-CSRF-Token`) and, when the browser sends Origin or Referer, come
  from the dashboard's own origin. The sign-in form is protected by a double-submit
  cookie (`kanal_login`) plus the same origin check.
- Failed sign-ins are limited per client address *and* tried admin key prefix
  (`LoginLimiter`), in the database, so that guessing waits and the owner doesn't.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from flask import Request

from ..clock import Clock
from ..config import Config
from ..ingest.enrich import client_ip
from ..reports.window import parse_duration
from ..runtime import Runtime
from ..store import dashboard as store
from ..store.db import Database
from ..store.keys import PREFIX_LENGTH, KeyInfo, lookup_key

SESSION_COOKIE = "kanal_session"
LOGIN_COOKIE = "kanal_login"
COOKIE_PATH = "/dashboard"
SESSION_SECONDS = 12 * 3600
LOGIN_FORM_SECONDS = 3600


def hash_token(token: str) -> str:
    """The SHA-256 hex of a session token (what the database keeps)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def tokens_equal(a: str | None, b: str | None) -> bool:
    """Constant-time comparison; False when either is missing."""
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                               b.encode("utf-8", "surrogatepass"))


class LoginLimiter:
    """At most `attempts` failed sign-ins per (client address, admin key prefix) in
    `window` seconds; then that pair waits out the window.

    Why this shape: an admin key is `ak_` and 32 random characters (192 bits); its first
    ten characters are its display prefix (`kanal keys list`). A guess whose prefix is no
    admin key's can't be right: it is refused (401) without being counted, so it can't
    lock anyone out, and answering it costs an attacker ~2^42 tries to even find a
    prefix. Guesses at a known prefix (one leaked from a screenshot of `kanal keys
    list`) are counted for their address and that prefix only: ten of them make that
    address wait for that key, while the owner — from another address, or with another
    admin key — signs in as usual. Only an attacker who both knows the prefix and shares
    the owner's address (the same NAT, or a proxy missing from `trusted_proxies`) can
    make the owner wait; `kanal dashboard unlock` clears that at once. A correct key in
    a waiting pair waits too: letting it through would let every guess be tried.
    """

    def __init__(self, db: Database, clock: Clock, *, attempts: int = 10,
                 window: float = 600.0) -> None:
        self._db = db
        self._clock = clock
        self.attempts = attempts
        self.window_ms = int(window * 1000)

    @classmethod
    def from_config(cls, db: Database, clock: Clock, config: Config) -> LoginLimiter:
        """With `[dashboard] login_attempts` and `login_window`."""
        section = config.section("dashboard")
        attempts = section.get("login_attempts", 10)
        window = parse_duration(str(section.get("login_window", "10m")),
                                param="dashboard.login_window")
        return cls(db, clock, attempts=int(attempts), window=window / 1000)

    def _bucket(self, key: str) -> str | None:
        """The admin key prefix a sign-in with `key` counts against (None: no admin key
        has that prefix, so the attempt can't succeed and isn't counted)."""
        prefix = key[:PREFIX_LENGTH]
        if len(prefix) < PREFIX_LENGTH:
            return None
        return prefix if prefix in store.admin_prefixes(self._db.conn()) else None

    def retry_after(self, client: str, key: str) -> int:
        """Seconds until `client` may try `key`'s prefix again; 0 when it may now."""
        bucket = self._bucket(key)
        if bucket is None:
            return 0
        now = int(self._clock.now() * 1000)
        times = store.recent_failures(self._db.conn(), client, bucket, now - self.window_ms)
        if len(times) < self.attempts:
            return 0
        return max(1, (times[-self.attempts] + self.window_ms - now) // 1000 + 1)

    def failed(self, client: str, key: str) -> None:
        """Count one failed sign-in of `client` with `key`."""
        bucket = self._bucket(key)
        if bucket is not None:
            store.add_failure(self._db.conn(), client, bucket,
                              int(self._clock.now() * 1000), self.window_ms)

    def succeeded(self, client: str, key: str) -> None:
        """Forget `client`'s failures at `key`'s prefix."""
        store.clear_failures(self._db.conn(), address=client, prefix=key[:PREFIX_LENGTH])


def _peer_trusted(request: Request, runtime: Runtime) -> bool:
    try:
        peer = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(peer in net for net in runtime.trusted_proxies)


def client_address(request: Request, runtime: Runtime) -> str:
    """The client's address (through trusted proxies only)."""
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                     runtime.trusted_proxies) or "unknown"


def is_https(request: Request, runtime: Runtime) -> bool:
    """True when the browser reached us over https (directly, via a trusted proxy's
    X-Forwarded-Proto, or as configured by an https public_url)."""
    if request.scheme == "https":
        return True
    if _peer_trusted(request, runtime):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto == "https":
            return True
    public_url = runtime.config.public_url or ""
    return public_url.lower().startswith("https://")


def own_origins(request: Request, runtime: Runtime) -> set[str]:
    """The origins the dashboard is served from (scheme://host[:port])."""
    origins = {f"{request.scheme}://{request.host}".lower()}
    if is_https(request, runtime):
        origins.add(f"https://{request.host}".lower())
    if runtime.config.public_url:
        parts = urlsplit(runtime.config.public_url)
        if parts.scheme and parts.netloc:
            origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origins


def same_origin(request: Request, runtime: Runtime) -> bool:
    """False when Origin (or, lacking it, Referer) names another origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.strip().lower() in own_origins(request, runtime)


def verify_admin_key(runtime: Runtime, key: str) -> KeyInfo | None:
    """The admin key's record; None for an unknown, revoked or non-admin key."""
    if not 0 < len(key) <= 200:
        return None
    info = lookup_key(runtime.db.conn(), key)
    if info is None or info.revoked or info.kind != "admin":
        return None
    return info


def open_session(runtime: Runtime, key: KeyInfo) -> tuple[str, store.DashboardSession]:
    """A new session for `key`: (the cookie's token, the stored session)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now_ms = int(runtime.clock.now() * 1000)
    expires = now_ms + SESSION_SECONDS * 1000
    store.create_session(runtime.db.conn(), hash_token(token), key.id, csrf, now_ms, expires)
    return token, store.DashboardSession(hash_token(token), key.id, csrf, now_ms, expires)


def current_session(request: Request, runtime: Runtime) -> store.DashboardSession | None:
    """The request's live session, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    return store.live_session(runtime.db.conn(), hash_token(token),
                              int(runtime.clock.now() * 1000))


def close_session(request: Request, runtime: Runtime) -> None:
    """Delete the request's session, if any."""
    token = request.cookies.get(SESSION_COOKIE)
    if token and len(token) <= 200:
        store.delete_session(runtime.db.conn(), hash_token(token))
