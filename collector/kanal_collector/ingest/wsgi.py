"""The ingest hot path as plain WSGI, in front of the Flask app.

POST (and the CORS preflight OPTIONS) under /v1/ are answered here; everything else
goes on to Flask. Answers are the same JSON as the rest of the collector:
`{"success": true, …}` or `{"code": …, "message": …}`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..errors import HTTPError, StorageError
from ..runtime import Runtime
from .handler import Incoming, accept
from .routes import CORS_HEADERS

log = logging.getLogger("kanal.ingest")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_PREFIX = "/v1/"
_REASONS = {200: "200 OK", 204: "204 No Content", 400: "400 Bad Request",
            401: "401 Unauthorized", 405: "405 Method Not Allowed",
            413: "413 Payload Too Large",
            429: "429 Too Many Requests", 500: "500 Internal Server Error",
            503: "503 Service Unavailable"}
_CORS = list(CORS_HEADERS.items())


class IngestMiddleware:
    """Serves POST /v1/<kind> itself and passes every other request to `app`."""

    def __init__(self, app: WSGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD")
        if not path.startswith(_PREFIX) or path.startswith("/v1/projects/"):
            return self.app(environ, start_response)
        if method == "OPTIONS":
            start_response("204 No Content", [*_CORS, ("Content-Length", "0")])
            return [b""]
        if method == "POST":
            try:
                status, body, extra = self._answer(path[len(_PREFIX):], environ)
            finally:
                self.runtime.db.release()  # a pooled connection goes back at once
        else:
            status, extra = 405, {"Allow": "POST, OPTIONS"}
            body = {"code": "method_not_allowed", "message": f"{method} is not allowed here; "
                    "events are sent with POST"}
        payload = orjson.dumps(body)
        headers = [("Content-Type", "application/json"),
                   ("Content-Length", str(len(payload))), *_CORS, *extra.items()]
        start_response(_REASONS.get(status, f"{status} Error"), headers)
        return [payload]

    def _answer(self, kind: str, environ: dict[str, Any]
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
        length = environ.get("CONTENT_LENGTH")
        try:
            content_length = int(length) if length else None
        except ValueError:
            content_length = None
        incoming = Incoming(
            stream=environ["wsgi.input"],
            content_length=content_length,
            content_encoding=environ.get("HTTP_CONTENT_ENCODING"),
            authorization=environ.get("HTTP_AUTHORIZATION"),
            remote_addr=environ.get("REMOTE_ADDR"),
            forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
            user_agent=environ.get("HTTP_USER_AGENT"),
        )
        try:
            return 200, accept(self.runtime, kind, incoming), {}
        except HTTPError as exc:
            return exc.status, {"code": exc.code, "message": exc.message}, exc.headers()
        except StorageError as exc:
            log.error("storage error: %s", exc)
            return 503, {"code": "unavailable",
                         "message": "the database can't be written; retry later"}, \
                {"Retry-After": "5"}
        except Exception:
            log.exception("unexpected error in ingest")
            return 500, {"code": "internal",
                         "message": "internal error; it has been logged"}, {}
