"""The baseline of bench_ingest.py: a bare Flask endpoint that only parses the JSON
body and answers 200, served by waitress with the same settings as `kanal serve`.

    python bench/bare_app.py --port 0 --threads 16
"""

from __future__ import annotations

import argparse
import sys

from flask import Flask, Response, jsonify, request
from waitress.server import create_server


def create_bare_app() -> Flask:
    """A Flask app whose POST /v1/<kind> parses the JSON body and answers 200."""
    app = Flask(__name__)

    @app.post("/v1/<path:kind>")
    def ingest(kind: str) -> tuple[Response, int]:
        request.get_json(force=True)
        return jsonify(success=True), 200

    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the bare app until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    # The same create_server() arguments as kanal_collector/server.py.
    server = create_server(
        create_bare_app(),
        host=args.host,
        port=args.port,
        threads=args.threads,
        ident="bare",
        backlog=1024,
        connection_limit=1000,
        channel_timeout=60,
        max_request_body_size=1024 * 1024,
        expose_tracebacks=False,
        asyncore_use_poll=True,
    )
    print(f"Bare listening on http://{server.effective_host}:{server.effective_port}",
          flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
