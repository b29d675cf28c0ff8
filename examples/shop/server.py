"""A tiny web shop with the Kanal snippet: page views, cart events, verified customers.

    kanal serve                          # prints the default source's public and secret key
    export KANAL_WRITE_KEY=<public key> KANAL_SECRET_KEY=<secret key>
    python examples/shop/server.py       # then open http://127.0.0.1:8080

KANAL_HOST is the collector's address (default http://127.0.0.1:8000), SHOP_PORT the
shop's port (default 8080). "Log in" as a demo customer and the page identifies them the
verified way: the server renders the hex HMAC-SHA256 of the userId, keyed with the
source's secret key, as `userHash`. The secret key stays on the server; only the hash of
this one userId reaches the browser. Without KANAL_SECRET_KEY the identify is sent plain
(and stored unverified).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
TEMPLATE = (HERE / "index.html").read_text()
CUSTOMERS = {
    "u123": {"email": "ada@example.com", "name": "Ada"},
    "u456": {"email": "linus@example.com", "name": "Linus"},
}
PRODUCTS = [
    {"product_id": "p1", "sku": "MUG-01", "name": "Kanal mug", "price": 12.0},
    {"product_id": "p2", "sku": "TEE-01", "name": "Kanal t-shirt", "price": 25.0},
]


def user_hash(secret_key: str, user_id: str) -> str:
    """The `userHash` kanal.js sends to prove the userId: hex HMAC-SHA256 under a secret key."""
    return hmac.new(secret_key.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c")


def render(
    user_id: str | None,
    *,
    host: str,
    write_key: str,
    secret_key: str | None,
    title: str = "Kanal shop",
) -> str:
    """The shop page, with the loader and, for a logged-in customer, the identify call."""
    if user_id in CUSTOMERS:
        options = {"userHash": user_hash(secret_key, user_id)} if secret_key else {}
        identify = (
            f"kanal('identify', {_script_json(user_id)}, "
            f"{_script_json(CUSTOMERS[user_id])}, {_script_json(options)});"
        )
        name = html.escape(CUSTOMERS[user_id]["name"])
        who = f"Logged in as {name} · <a href=/logout>log out</a>"
    else:
        identify = ""
        who = " · ".join(f"<a href='/login?user={uid}'>log in as {c['name']}</a>"
                         for uid, c in CUSTOMERS.items())
    return (
        TEMPLATE.replace("{{title}}", html.escape(title))
        .replace("{{host}}", _script_json(host))
        .replace("{{write_key}}", _script_json(write_key))
        .replace("{{identify}}", identify)
        .replace("{{who}}", who)
        .replace("{{products}}", _script_json(PRODUCTS))
    )


class ShopHandler(BaseHTTPRequestHandler):
    """Serves the shop page; /login?user=ID and /logout fake a session cookie."""

    host = os.environ.get("KANAL_HOST", "http://127.0.0.1:8000")
    write_key = os.environ.get("KANAL_WRITE_KEY", "")
    secret_key = os.environ.get("KANAL_SECRET_KEY") or None

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.path == "/login":
            user = parse_qs(url.query).get("user", [""])[0]
            if user not in CUSTOMERS:
                self.send_error(404, "no such demo customer")
                return
            return self._redirect(f"shop_user={user}; Path=/; HttpOnly; SameSite=Lax")
        if url.path == "/logout":
            return self._redirect("shop_user=; Path=/; Max-Age=0", reset=True)
        if url.path != "/":
            self.send_error(404)
            return
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        customer = cookie["shop_user"].value if "shop_user" in cookie else None
        page = render(
            customer, host=self.host, write_key=self.write_key, secret_key=self.secret_key
        )
        if parse_qs(url.query).get("reset"):  # after logout: forget the visitor's ids
            page = page.replace("<!--reset-->", "<script>kanal('reset')</script>")
        self._send(200, page.encode(), [])

    def _redirect(self, set_cookie: str, reset: bool = False) -> None:
        location = "/?reset=1" if reset else "/"
        self._send(303, b"", [("Set-Cookie", set_cookie), ("Location", location)])

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    """Run the shop on 127.0.0.1:SHOP_PORT."""
    if not ShopHandler.write_key:
        raise SystemExit("set KANAL_WRITE_KEY to the source's public key (see `kanal serve`)")
    port = int(os.environ.get("SHOP_PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), ShopHandler)
    print(f"shop on http://127.0.0.1:{server.server_address[1]} (collector {ShopHandler.host})")
    server.serve_forever()


if __name__ == "__main__":
    main()
