"""Fixtures of the SDK tests: a local collector stand-in, clients that are always shut down."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from _sdk_sink import Sink

import kanal


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A local stand-in for the collector's ingest, on a free loopback port."""
    state: dict[str, Sink] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            s = state["sink"]
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            with s.lock:
                status = s.statuses.pop(0) if s.statuses else 200
                s.requests.append({
                    "path": self.path, "headers": dict(self.headers), "status": status,
                    "body": json.loads(raw),
                })
            body = json.dumps({"success": True} if status == 200 else
                              {"code": "error", "message": "injected"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with s.received:
                s.received.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-sink")
    thread.start()
    state["sink"] = Sink(url=f"http://127.0.0.1:{server.server_port}")
    try:
        yield state["sink"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def make_client() -> Iterator[Callable[..., kanal.Client]]:
    """Build clients that are shut down when the test ends (no threads left behind)."""
    clients: list[kanal.Client] = []

    def make(write_key: str = "test-key", **options: Any) -> kanal.Client:
        client = kanal.Client(write_key, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(timeout=5)
    # Torn down after _reset_module_client (which depends on this fixture), so by now
    # every client a test made, explicit or default, has been shut down.
    left = [t for t in threading.enumerate() if t.name == "kanal-consumer" and t.is_alive()]
    assert not left, "a test left a client running; shut it down"


@pytest.fixture(autouse=True)
def _reset_module_client(make_client: Callable[..., kanal.Client]) -> Iterator[None]:
    """Module-level settings, the default client and consumer threads never leak."""
    saved = {name: getattr(kanal, name) for name in (
        "write_key", "host", "flush_at", "flush_interval", "max_queue_size", "max_retries",
        "timeout", "gzip", "sync_mode", "send", "disabled", "on_error", "debug", "spool_path")}
    yield
    kanal.shutdown(timeout=5)
    for name, value in saved.items():
        setattr(kanal, name, value)
