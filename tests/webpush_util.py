"""Web push test helpers: subscriptions made like a browser makes them, an independent
RFC 8291 decryption and VAPID check (cryptography's primitives, written here), and a
push-service stand-in on loopback."""

from __future__ import annotations

import base64
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VAPID_KEY = "tCjF9Iqp2iC7p3Y052KtTJIRhlKCHQoYFe4dBSLngwo"  # made by `kanal webpush keys`
VAPID_PUBLIC = ("BNToHalZBPHSh54IdamKkzZwUXneSuItmePJBS_B8engcfejjkD39C93cbhauD6rPsneQJ_"
                "-DXOZR3MGXEhjnUE")
SUBJECT = "mailto:ops@shop.example"


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Browser:
    """What a browser keeps of one push subscription: its P-256 key and auth secret."""

    endpoint: str
    key: Any
    auth: bytes

    @property
    def subscription(self) -> dict[str, Any]:
        from cryptography.hazmat.primitives import serialization

        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64e(public),
                                                    "auth": b64e(self.auth)}}

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 / RFC 8188 (aes128gcm), one record, by hand."""
        from cryptography.hazmat.primitives import hashes, hmac, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

        salt, record_size, id_len = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
        server_public = body[21:21 + id_len]
        ciphertext = body[21 + id_len:]
        assert id_len == 65 and len(ciphertext) <= record_size

        def extract(salt: bytes, ikm: bytes) -> bytes:
            mac = hmac.HMAC(salt, hashes.SHA256())
            mac.update(ikm)
            return mac.finalize()

        def expand(prk: bytes, info: bytes, length: int) -> bytes:
            return HKDFExpand(hashes.SHA256(), length, info).derive(prk)

        shared = self.key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), server_public))
        mine = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        ikm = expand(extract(self.auth, shared),
                     b"WebPush: info\x00" + mine + server_public, 32)
        prk = extract(salt, ikm)
        cek = expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = expand(prk, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        text = padded.rstrip(b"\x00")
        assert text.endswith(b"\x02"), "the last record's delimiter"
        return text[:-1]


def new_browser(endpoint: str) -> Browser:
    from cryptography.hazmat.primitives.asymmetric import ec

    return Browser(endpoint, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))


def verify_vapid(header: str, audience: str) -> dict[str, Any]:
    """Check `Authorization: vapid t=JWT,k=KEY` (ES256 over the JWT, by hand)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    scheme, _, params = header.partition(" ")
    assert scheme == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == VAPID_PUBLIC
    head, claims, signature = parts["t"].split(".")
    raw = b64d(signature)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(parts["k"]))
    key.verify(utils.encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                          int.from_bytes(raw[32:], "big")),
               f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(b64d(head)) == {"typ": "JWT", "alg": "ES256"}
    payload: dict[str, Any] = json.loads(b64d(claims))
    assert payload["aud"] == audience and payload["sub"] == SUBJECT
    assert time.time() < payload["exp"] <= time.time() + 86_400
    return payload


@dataclass
class PushService:
    """A push service on loopback: keeps each request; answers `status` (201)."""

    url: str
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 201


@contextmanager
def push_service_on_loopback() -> Iterator[PushService]:
    """Start a PushService (a real HTTP server on 127.0.0.1)."""
    service = PushService("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            service.received.append((self.path, {k.lower(): v for k, v in
                                                 self.headers.items()}, body))
            self.send_response(service.status)
            self.send_header("Location", f"{service.url}/m/{len(service.received)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()


