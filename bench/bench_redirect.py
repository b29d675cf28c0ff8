"""Tracking redirects per second beside a bare Flask redirect, in the same run.

Both are served by waitress with the same create_server() settings as `kanal serve`
(threads, backlog, connection limit) and loaded by wrk on loopback with a browser
User-Agent. The tracking side is a real `kanal serve` (workers running) on a fresh
database: every click verifies the HMAC token, reads the recorded URL and appends an
"Email Link Clicked" event (group commit, synchronous=FULL) before it answers 302.
The open pixel (also one event per request) is measured too. Figures only; never fails
on timing.

    python bench/bench_redirect.py [--seconds 5] [--connections 32] [--threads 16]
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = "https://shop.example/product/42?utm_source=email"
UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")
_LISTEN = re.compile(r"listening on (http://\S+)")


def serve_bare(threads: int) -> None:
    """The baseline: GET /r answers a 302 to a fixed URL, nothing else."""
    from flask import Flask, Response
    from waitress.server import create_server

    app = Flask(__name__)

    @app.get("/r")
    def redirect() -> Response:
        return Response(status=302, headers={"Location": TARGET, "Cache-Control": "no-store",
                                             "Referrer-Policy": "no-referrer"})

    server = create_server(app, host="127.0.0.1", port=0, threads=threads, ident="bare",
                           backlog=1024, connection_limit=1000, channel_timeout=60,
                           max_request_body_size=1024 * 1024, expose_tracebacks=False,
                           asyncore_use_poll=True)
    print(f"Bare listening on http://127.0.0.1:{server.effective_port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


def prepare(workdir: Path) -> tuple[Path, str, str]:
    """A database with one person and one tracked email; (config, click, pixel path)."""
    from kanal_collector.app import build_processor, close_app, create_app
    from kanal_collector.config import load_config
    from kanal_collector.profiles.views import lookup
    from kanal_collector.store.keys import bootstrap
    from kanal_collector.tracking import prepare_email

    config_path = workdir / "kanal.toml"
    config_path.write_text(f'db = "{workdir / "kanal.db"}"\n'
                           '[tracking]\nbase_url = "http://127.0.0.1"\n'
                           'bot_click_seconds = 0\n', encoding="utf-8")
    app = create_app(load_config(config_path))
    runtime = app.extensions["kanal"]
    keys = bootstrap(runtime.db.conn(), int(time.time() * 1000)) or {}
    r = app.test_client().post("/v1/identify", auth=(keys["secret"], ""),
                               json={"userId": "bench-user"})
    assert r.status_code == 200
    build_processor(runtime.db).catch_up()
    pid = lookup(runtime.db.conn(), "bench-user")
    assert pid is not None
    html, _ = prepare_email(runtime.db.conn(), outbox_id=1, profile_id=pid, message="bench",
                            journey=None, html=f'<a href="{TARGET}">x</a>',
                            base_url="http://127.0.0.1", now=time.time())
    close_app(app)
    click = re.search(r'/c/[^"]+', html)
    pixel = re.search(r'/o/[^"]+', html)
    assert click and pixel
    return config_path, click.group(0), pixel.group(0)


def start(argv: list[str], workdir: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a server process; return it and its base URL."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "collector"), str(ROOT / "sdk"),
                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = _LISTEN.search(line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"server did not start: {argv}")


def wrk(url: str, seconds: int, connections: int) -> tuple[float, str, str]:
    """(requests/s, mean latency, p99 latency) of one wrk run."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-H", f"User-Agent: {UA}", url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx" in out:
        raise SystemExit(f"errors while loading {url}:\n{out}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    mean = re.search(r"Latency\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return rate, mean, p99


def main(argv: list[str] | None = None) -> None:
    """Run both servers, load each with wrk, print a table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=16, help="waitress threads")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config_path, click, pixel = prepare(workdir)
        kanal, kanal_url = start([sys.executable, "-m", "kanal_collector", "serve",
                                  "--config", str(config_path), "--port", "0",
                                  "--threads", str(args.threads)], workdir)
        bare, bare_url = start([sys.executable, __file__, "--serve-bare",
                                "--threads", str(args.threads)], workdir)
        try:
            rows = [
                ("bare Flask redirect (baseline)", *wrk(f"{bare_url}/r", args.seconds,
                                                        args.connections)),
                ("tracking redirect /c/<token>", *wrk(f"{kanal_url}{click}", args.seconds,
                                                      args.connections)),
                ("open pixel /o/<token>.gif", *wrk(f"{kanal_url}{pixel}", args.seconds,
                                                   args.connections)),
            ]
        finally:
            for proc in (kanal, bare):
                proc.terminate()
                proc.wait(30)
                if proc.stdout:
                    proc.stdout.close()
        conn = sqlite3.connect(workdir / "kanal.db")
        stored = conn.execute("SELECT event, count(*) FROM events WHERE origin = 'email' "
                              "GROUP BY event").fetchall()
        conn.close()
    base = rows[0][1]
    print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s on loopback; waitress "
          f"threads={args.threads}; Python {sys.version.split()[0]}\n")
    print(f"{'endpoint':<34}{'req/s':>10}{'vs bare':>9}{'mean':>10}{'p99':>10}")
    for name, rate, mean, p99 in rows:
        print(f"{name:<34}{rate:>10.0f}{rate / base:>8.0%} {mean:>10}{p99:>10}")
    print(f"\nevents stored: {dict(stored)}")


if __name__ == "__main__":
    main()
