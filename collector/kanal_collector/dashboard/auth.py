"""Dashboard sign-in: sessions, CSRF tokens, same-origin checks, a login rate limit.

- Signing in takes an admin key. The browser gets a random token in the `kanal_session`
  cookie (HttpOnly, SameSite=Strict, Path=/dashboard, Secure over https, 12 hours); the
  database keeps only its SHA-256 with the key's id, so revoking the key ends the session.
- Every session has a CSRF token, embedded in its pages; a POST must carry it (form field
  `csrf` or header `X-CSRF-Token`) and, when the browser sends Origin or Referer, come
  from the dashboard's own origin. The sign-in form is protected by a double-submit
  cookie (`kanal_login`) plus the same origin check.
- Failed sign-ins are limited per client address (in memory, per process).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
from collections import deque
from urllib.parse import urlsplit

from flask import Request

from ..clock import Clock
from ..ingest.enrich import client_ip
from ..runtime import Runtime
from ..store import dashboard as store
from ..store.keys import KeyInfo, lookup_key

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
    """At most `attempts` failed sign-ins per client address in `window` seconds."""

    def __init__(self, clock: Clock, *, attempts: int = 10, window: float = 600.0,
                 max_clients: int = 10_000) -> None:
        self._clock = clock
        self._attempts = attempts
        self._window = window
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.get(client, deque())
        while times and times[0] <= now - self._window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may now."""
        now = self._clock.now()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self._attempts:
                return 0
            return max(1, int(times[0] + self._window - now) + 1)

    def failed(self, client: str) -> None:
        """Count one failed sign-in of `client`."""
        now = self._clock.now()
        with self._lock:
            if client not in self._failures and len(self._failures) >= self._max_clients:
                self._failures.clear()  # a flood of addresses must not grow memory
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        with self._lock:
            self._failures.pop(client, None)


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
