"""Outbound-request guard against SSRF: refuse private, loopback, link-local, multicast,
reserved and cloud-metadata addresses after DNS resolution, for every connection.

`check_url` checks a URL before a request (useful for a clear early error);
`guarded_session` returns a `requests.Session` whose connections resolve the host, check
every address and then connect to the very address that was checked, so a DNS answer
that changes between the check and the connect (DNS rebinding) can't reach a private
address, and every redirect hop is checked the same way. Email tracking and journeys
reuse this module for any URL a user or a message supplies.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance-metadata services. All are non-global addresses already, but they are named
# here so they stay refused even when a channel sets `allow_private = true`: a webhook to
# a box on the office LAN is a reasonable wish; handing out cloud credentials is not.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle …
    "169.254.170.2",     # AWS ECS task metadata
    "169.254.169.123",   # AWS time sync
    "100.100.100.200",   # Alibaba Cloud
    "192.0.0.192",       # Oracle Cloud (legacy)
    "fd00:ec2::254",     # AWS over IPv6
    "fd00:ec2::23",      # AWS EKS pod identity
))
METADATA_HOSTNAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal", "kubernetes.default.svc",
})

# NAT64 (RFC 6052) embeds an IPv4 address in the low 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str, int], list[str]]


class BlockedAddress(ValueError):
    """The URL's host is, or resolves to, an address outbound requests may not reach."""


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_resolver: Resolver = _system_resolver


def set_resolver(resolver: Resolver | None) -> Resolver:
    """Replace the DNS resolver (tests); None restores the system's. Returns the old one."""
    global _resolver
    old = _resolver
    _resolver = resolver or _system_resolver
    return old


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    # Deprecated IPv4-compatible form ::a.b.c.d
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def refusal(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why `ip` may not be reached (None when it may)."""
    ip = ipaddress.ip_address(str(ip).split("%", 1)[0])  # drop an IPv6 zone id
    inner = _embedded_ipv4(ip)
    if inner is not None:
        why = refusal(inner, allow_private=allow_private)
        return f"{why} (embedded in {ip})" if why else None
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if allow_private:
        if ip.is_multicast or ip.is_unspecified:
            return f"{ip} is a multicast or unspecified address"
        return None
    for label, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                        ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return f"{ip} is a {label} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def check_address(ip: str | IPAddress, *, allow_private: bool = False) -> IPAddress:
    """Return `ip` as an address object, or raise BlockedAddress."""
    try:
        addr = ipaddress.ip_address(str(ip).split("%", 1)[0])
    except ValueError:
        raise BlockedAddress(f"{ip!r} is not an IP address") from None
    why = refusal(addr, allow_private=allow_private)
    if why:
        raise BlockedAddress(why)
    return addr


def resolve(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """Resolve `host`, check every address and return them all, or raise BlockedAddress.

    One bad address refuses the host: an attacker controlling DNS would otherwise answer
    with a public and a private address and let the connection pick.
    """
    name = host.strip("[]").rstrip(".").lower()
    if not name:
        raise BlockedAddress("the URL has no host")
    if name in METADATA_HOSTNAMES:
        raise BlockedAddress(f"{host} is a cloud metadata host name")
    try:
        # Literal addresses (also decimal/hex/octal IPv4 forms such as 2130706433 or
        # 0x7f.1, which getaddrinfo accepts) go through the resolver too, so the check
        # sees what the connection would use.
        addresses = _resolver(name, port)
    except (OSError, UnicodeError) as exc:
        raise BlockedAddress(f"cannot resolve {host}: {exc}") from None
    if not addresses:
        raise BlockedAddress(f"{host} has no address")
    for address in addresses:
        why = refusal(ipaddress.ip_address(address.split("%", 1)[0]),
                      allow_private=allow_private)
        if why:
            raise BlockedAddress(f"{host} resolves to a refused address: {why}")
    return addresses


def check_url(url: str, *, allow_private: bool = False) -> list[str]:
    """Check an http(s) URL's scheme and host; return the addresses it resolves to."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise BlockedAddress(f"only http and https URLs are allowed, not {url!r}")
    if parts.username or parts.password:
        raise BlockedAddress("URLs with credentials in them are refused")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise BlockedAddress(f"bad port in {url!r}: {exc}") from None
    return resolve(parts.hostname or "", port, allow_private=allow_private)


def _guarded_conn(conn: HTTPConnection, allow_private: bool) -> socket.socket:
    """Resolve, check, then connect to a checked address (never resolve twice)."""
    host = conn._dns_host  # noqa: SLF001 - the host urllib3 itself would resolve
    addresses = resolve(host, conn.port or 0, allow_private=allow_private)
    last: OSError | None = None
    for address in addresses:
        try:
            sock = create_connection((address, conn.port or 0), conn.timeout,
                                     source_address=conn.source_address,
                                     socket_options=conn.socket_options)
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout="
                      f"{conn.timeout})") from exc
        except OSError as exc:
            last = exc
            continue
        return sock
    if last is None:  # pragma: no cover - resolve() never returns an empty list
        raise NameResolutionError(conn.host, conn, socket.gaierror("no address"))
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}") from last


def _connection_classes(allow_private: bool) -> tuple[type[HTTPConnection],
                                                      type[HTTPSConnection]]:
    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_conn(self, allow_private)

    class GuardedHTTPSConnection(HTTPSConnection):
        # TLS still verifies the certificate against the host name and sends it as
        # SNI: only the TCP connection is pinned to the checked address.
        def _new_conn(self) -> socket.socket:
            return _guarded_conn(self, allow_private)

    return GuardedHTTPConnection, GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through the address check."""

    def __init__(self, *, allow_private: bool = False, **kwargs: Any) -> None:
        self.allow_private = allow_private
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_cls, https_cls = _connection_classes(self.allow_private)

        class Pool(HTTPConnectionPool):
            ConnectionCls = http_cls

        class TLSPool(HTTPSConnectionPool):
            ConnectionCls = https_cls

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise BlockedAddress("guarded sessions do not use proxies")


def guarded_session(*, allow_private: bool = False) -> requests.Session:
    """A Session that refuses non-public addresses (see the module docstring).

    It ignores proxy environment variables (a proxy would make the check meaningless) and
    leaves redirects to the caller: pass `allow_redirects=False` and call `check_url` on
    each `Location` before following it, or rely on the connection-level check alone.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(allow_private=allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
