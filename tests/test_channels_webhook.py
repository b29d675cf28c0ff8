"""The webhook channel and the SSRF guard (channels/netguard.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import requests
import responses

from kanal_collector.channels import netguard
from kanal_collector.channels.base import OutgoingMessage, PermanentError, TransientError
from kanal_collector.channels.webhook import SIGNATURE_HEADER, WebhookChannel, sign, verify

PUBLIC = "93.184.216.34"
SECRET = "whsec_test"

# Host names the fake resolver knows; anything else must be a numeric address.
DNS = {
    "hooks.example": [PUBLIC],
    "other.example": ["93.184.216.35"],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example": ["10.1.2.3"],
    "mixed.example": [PUBLIC, "127.0.0.1"],
    "sneaky.example": ["::ffff:192.168.0.1"],
}


def fake_resolver(host: str, port: int) -> list[str]:
    if host in DNS:
        return DNS[host]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_NUMERICHOST)  # never touches the network
    return [str(info[4][0]) for info in infos]


@pytest.fixture(autouse=True)
def resolver() -> Iterator[None]:
    old = netguard.set_resolver(fake_resolver)
    yield
    netguard.set_resolver(old)


REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10/",
    "http://[::1]/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",                  # carrier-grade NAT
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://[::ffff:127.0.0.1]/",          # IPv4-mapped IPv6
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::a00:1]/",            # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::1]/",            # 6to4 of 127.0.0.1
    "http://2130706433/",                  # decimal 127.0.0.1
    "http://0x7f000001/",                  # hex
    "http://0177.0.0.1/",                  # octal
    "http://127.1/",                       # short form
    "http://0xa9fea9fe/",                  # hex 169.254.169.254
    "http://localhost:8000/",
    "http://LOCALHOST./",
    "http://internal.example/",
    "http://mixed.example/",               # one bad answer refuses the host
    "http://sneaky.example/",
    "ftp://hooks.example/",
    "file:///etc/passwd",
    "http://user:pw@hooks.example/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_urls(url: str) -> None:
    with pytest.raises(netguard.BlockedAddress):
        netguard.check_url(url)


@pytest.mark.parametrize("url", [
    "https://hooks.example/kanal", f"http://{PUBLIC}:8080/x", "http://[2606:4700::1111]/"])
def test_public_urls_pass(url: str) -> None:
    assert netguard.check_url(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://[::1]/", "http://10.0.0.5/", "http://192.168.1.1/",
    "http://localhost/", "http://internal.example/", "http://[::ffff:127.0.0.1]/"])
def test_allow_private_lets_local_addresses_through(url: str) -> None:
    assert netguard.check_url(url, allow_private=True)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://metadata.google.internal/",
    "http://[::ffff:169.254.169.254]/", "http://0xa9fea9fe/"])
def test_metadata_stays_refused_with_allow_private(url: str) -> None:
    with pytest.raises(netguard.BlockedAddress, match="metadata"):
        netguard.check_url(url, allow_private=True)


# -- the webhook channel over mocked HTTP ---------------------------------------------


def channel(**settings: Any) -> WebhookChannel:
    return WebhookChannel({"url": "https://hooks.example/kanal", "secret": SECRET,
                           **settings}, clock=lambda: 1_700_000_000.0)


def message(payload: Any = None) -> OutgoingMessage:
    return OutgoingMessage(outbox_id=3, idempotency_key="row-3", recipient="user-9",
                           content={"payload": payload or {"event": "cart", "total": 12.5}})


@responses.activate
def test_signed_json_post() -> None:
    responses.post("https://hooks.example/kanal", json={"id": "evt_1"})
    result = channel(headers={"Authorization": "Bearer abc"}).send(message())
    [call] = responses.calls
    body = call.request.body
    assert isinstance(body, bytes)
    assert json.loads(body) == {"event": "cart", "total": 12.5}
    headers = call.request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "row-3"
    assert headers["Authorization"] == "Bearer abc"
    assert headers[SIGNATURE_HEADER] == sign(SECRET, 1_700_000_000, body)
    assert headers[SIGNATURE_HEADER].startswith("t=1700000000,v1=")
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=1_700_000_010)
    assert not verify(SECRET, headers[SIGNATURE_HEADER], body + b" ", now=1_700_000_010)
    assert not verify("other", headers[SIGNATURE_HEADER], body, now=1_700_000_010)
    assert not verify(SECRET, headers[SIGNATURE_HEADER], body, now=1_700_009_999)
    assert result.provider_id == "evt_1"


@responses.activate
@pytest.mark.parametrize("status,headers,error,retry_after", [
    (500, {}, TransientError, None),
    (503, {"Retry-After": "120"}, TransientError, 120.0),
    (429, {"Retry-After": "7"}, TransientError, 7.0),
    (400, {}, PermanentError, None),
    (404, {}, PermanentError, None),
    (410, {}, PermanentError, None),
])
def test_status_mapping(status: int, headers: dict[str, str], error: type[Exception],
                        retry_after: float | None) -> None:
    responses.post("https://hooks.example/kanal", status=status, headers=headers, body="no")
    with pytest.raises(error, match=str(status)) as info:
        channel().send(message())
    if isinstance(info.value, TransientError):
        assert info.value.retry_after == retry_after


@responses.activate
@pytest.mark.parametrize("exc", [requests.ConnectTimeout(), requests.ReadTimeout(),
                                 requests.ConnectionError("reset")])
def test_network_errors_are_transient(exc: Exception) -> None:
    responses.post("https://hooks.example/kanal", body=exc)
    with pytest.raises(TransientError, match="webhook request"):
        channel().send(message())


@responses.activate
def test_redirect_to_public_address_is_followed_with_the_same_signed_body() -> None:
    responses.post("https://hooks.example/kanal", status=307,
                   headers={"Location": "https://other.example/v2"})
    responses.post("https://other.example/v2", json={})
    channel(headers={"Authorization": "Bearer abc"}).send(message())
    first, second = responses.calls
    assert second.request.body == first.request.body
    assert second.request.headers[SIGNATURE_HEADER] == first.request.headers[SIGNATURE_HEADER]
    # Credentials from the settings stay with the configured origin.
    assert "Authorization" not in second.request.headers


@responses.activate
@pytest.mark.parametrize("location", [
    "http://10.0.0.1/steal", "http://169.254.169.254/latest/meta-data/iam/",
    "http://localhost:9200/_all", "http://[::ffff:127.0.0.1]/", "http://2130706433/",
    "http://mixed.example/"])
def test_redirect_to_private_address_is_refused(location: str) -> None:
    responses.post("https://hooks.example/kanal", status=302, headers={"Location": location})
    with pytest.raises(PermanentError, match="refused"):
        channel().send(message())
    assert len(responses.calls) == 1  # the private address was never requested


@responses.activate
def test_too_many_redirects() -> None:
    responses.post("https://hooks.example/kanal", status=308,
                   headers={"Location": "https://hooks.example/kanal"})
    with pytest.raises(PermanentError, match="more than 2 redirects"):
        channel(max_redirects=2).send(message())
    assert len(responses.calls) == 3


@responses.activate
def test_configured_private_url_is_refused_unless_allowed() -> None:
    responses.post("http://10.0.0.8/hook", json={})
    with pytest.raises(PermanentError, match="private"):
        channel(url="http://10.0.0.8/hook").send(message())
    channel(url="http://10.0.0.8/hook", allow_private=True).send(message())
    assert len(responses.calls) == 1


@pytest.mark.parametrize("settings,error", [
    ({"url": None}, "url is required"),
    ({"secret": ""}, "secret is required"),
    ({"url": "ftp://hooks.example/"}, "http or https"),
    ({"timeout": 0}, "timeout must be positive"),
    ({"headers": {"X-A": "b\r\nX-Evil: 1"}}, "line break"),
])
def test_bad_settings(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        channel(**settings)


# -- real connections: the guard sits where the socket is opened -----------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[int, list[tuple[str, dict[str, str], bytes]]]]:
    seen: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_real_request_to_loopback_is_refused(
        local_server: tuple[int, list[Any]]) -> None:
    port, seen = local_server
    with pytest.raises(PermanentError, match="loopback"):
        channel(url=f"http://127.0.0.1:{port}/hook").send(message())
    assert seen == []


def test_real_request_with_allow_private(local_server: tuple[int, list[Any]]) -> None:
    port, seen = local_server
    hook = channel(url=f"http://localhost:{port}/hook", allow_private=True)
    hook.send(message())
    hook.close()
    [(path, headers, body)] = seen
    assert path == "/hook"
    assert headers["Host"] == f"localhost:{port}"
    assert verify(SECRET, headers[SIGNATURE_HEADER], body, now=1_700_000_000)


def test_dns_rebinding_between_check_and_connect_is_refused(
        local_server: tuple[int, list[Any]]) -> None:
    """The name resolves to a public address when checked, then to loopback: the
    connection checks again what it connects to, so the second answer is refused."""
    port, seen = local_server
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    netguard.set_resolver(lambda host, p: next(answers))
    hook = channel(url=f"http://rebind.example:{port}/hook")
    with pytest.raises(PermanentError, match="loopback"):
        hook.send(message())
    hook.close()
    assert seen == []


def test_guarded_session_connects_to_the_checked_address(
        local_server: tuple[int, list[Any]]) -> None:
    port, seen = local_server
    calls: list[str] = []

    def resolve(host: str, p: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    netguard.set_resolver(resolve)
    with netguard.guarded_session(allow_private=True) as session:
        response = session.post(f"http://pinned.example:{port}/x", data=b"hi", timeout=5)
        assert response.status_code == 200
    assert calls == ["pinned.example"]  # resolved once, by the guard itself
    assert seen[0][1]["Host"] == f"pinned.example:{port}"
    with netguard.guarded_session() as session, pytest.raises(netguard.BlockedAddress):
        session.post(f"http://pinned.example:{port}/x", data=b"hi", timeout=5)
    assert len(seen) == 1


def test_guarded_session_never_uses_a_proxy() -> None:
    with netguard.guarded_session() as session:
        assert session.trust_env is False  # HTTP(S)_PROXY would bypass the address check
        adapter = session.get_adapter("https://hooks.example/")
        with pytest.raises(netguard.BlockedAddress, match="proxies"):
            adapter.proxy_manager_for("http://proxy.example:3128")  # type: ignore[attr-defined]


def test_check_address_helpers() -> None:
    assert str(netguard.check_address(PUBLIC)) == PUBLIC
    with pytest.raises(netguard.BlockedAddress, match="not an IP address"):
        netguard.check_address("example.com")
    assert netguard.refusal(netguard.check_address(PUBLIC)) is None

