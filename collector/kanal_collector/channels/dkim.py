"""DKIM signing (RFC 6376) for the email channel, with dkimpy.

Settings of an email channel (`[channels.NAME]`), one selector per From domain:

    dkim_selector = "kanal1"                        # the DNS name kanal1._domainkey.<domain>
    dkim_private_key_file = "/etc/kanal/dkim.pem"   # an RSA key in PEM …
    dkim_private_key = { env = "DKIM_PRIVATE_KEY" } # … or the PEM text from the environment
    dkim_domain = "shop.example"                    # d=, default: the From address's domain

Signed with relaxed/relaxed canonicalization. The headers RFC 6376 recommends are
signed, plus List-Unsubscribe-Post (RFC 8058 asks for both unsubscribe headers to be
signed), Feedback-ID and Precedence; From, Subject and the two unsubscribe headers are
signed once more than they occur, so nobody can add a second one after signing.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_EXTRA = (b"list-unsubscribe-post", b"feedback-id", b"precedence")
_FROZEN = (b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post")
MIN_BITS = 1024
"""RFC 8301: verifiers must refuse shorter RSA keys; 2048 is what to generate."""


@dataclass(frozen=True)
class DkimSigner:
    """Signs whole messages (bytes with CRLF line ends) for one domain and selector."""

    domain: str
    selector: str
    private_key: bytes
    """PEM of an RSA private key."""

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header in front."""
        signer = dkim.DKIM(message, minkey=MIN_BITS, linesep=b"\r\n")
        signer.should_sign.update(_EXTRA)
        signer.frozen_sign.update(_FROZEN)
        header = signer.sign(self.selector.encode(), self.domain.encode(), self.private_key,
                             canonicalize=(b"relaxed", b"relaxed"))
        return header + message

    def public_key_record(self) -> str:
        """The TXT record to publish at `<selector>._domainkey.<domain>`."""
        return dns_record(self.private_key)


def dns_record(private_key_pem: bytes) -> str:
    """`v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>` for an RSA private key."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def signer_from_settings(settings: Mapping[str, Any], from_domain: str) -> DkimSigner | None:
    """The channel's signer, or None without `dkim_selector`; ValueError naming the key."""
    selector = settings.get("dkim_selector")
    inline = settings.get("dkim_private_key")
    path = settings.get("dkim_private_key_file")
    if selector is None:
        if inline or path:
            raise ValueError("dkim_selector is required with a DKIM private key")
        return None
    if not isinstance(selector, str) or not selector or not all(
            c.isalnum() or c in "-_." for c in selector) or not selector.isascii():
        raise ValueError(f"dkim_selector must be a DNS label like \"kanal1\", not {selector!r}")
    if bool(inline) == bool(path):
        raise ValueError("dkim: set one of dkim_private_key_file and dkim_private_key")
    if path:
        try:
            pem = Path(str(path)).read_bytes()
        except OSError as exc:
            raise ValueError(f"dkim_private_key_file: cannot read {path}: "
                             f"{exc.strerror or exc}") from None
    else:
        pem = str(inline).replace("\\n", "\n").encode()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"dkim private key is not an unencrypted PEM key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("dkim private key must be an RSA key (rsa-sha256)")
    if key.key_size < MIN_BITS:
        raise ValueError(f"dkim private key has {key.key_size} bits; use 2048")
    domain = str(settings.get("dkim_domain") or from_domain).strip().lower()
    sender = from_domain.lower()
    if not domain or not (sender == domain or sender.endswith("." + domain)):
        # DMARC alignment: d= must be the From domain or a parent of it.
        raise ValueError(f"dkim_domain {domain!r} is not the From domain {from_domain!r} "
                         f"or a parent of it (DMARC would not align)")
    return DkimSigner(domain, selector, pem)
