"""A local stand-in of Meta's Custom Audience users endpoint, as a real process.

    python audience_standin.py PORT_FILE LOG_FILE [--stall-at N]

Answers `POST` (add) and `DELETE` (remove) of `/{version}/{audience_id}/users` with
the documented answer shape, after appending `{"method", "rows"}` to LOG_FILE (one JSON
line, flushed to disk) — so the log holds every request that reached the platform,
answered or not. With `--stall-at N` the N-th request is logged and then never answered
(a request in flight when the caller dies). Writes its port to PORT_FILE once listening.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_lock = threading.Lock()
_count = 0


def main() -> None:
    port_file, log_file = sys.argv[1], sys.argv[2]
    stall_at = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--stall-at" else 0

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _users(self) -> None:
            global _count
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if not self.path.endswith("/users") or "payload" not in form:
                self.send_response(400)
                self.end_headers()
                return
            payload = json.loads(form["payload"][0])
            with _lock:
                _count += 1
                number = _count
                with open(log_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"method": self.command, "rows": payload["data"]})
                            + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            if number == stall_at:
                time.sleep(3600)  # in flight until the caller is gone
                return
            body = json.dumps({"audience_id": self.path.split("/")[-2], "session_id": "1",
                               "num_received": len(payload["data"]),
                               "num_invalid_entries": 0,
                               "invalid_entry_samples": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = _users  # noqa: N815
        do_DELETE = _users  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
