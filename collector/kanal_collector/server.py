"""`kanal serve`: the WSGI server and the workers in one process."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from flask import Flask
from waitress.server import create_server

from .app import close_app, create_app, start_workers
from .config import Config
from .deliverability.receiver import BounceServer, start_receiver, stop_receiver
from .deliverability.routes import WebhookState
from .errors import ConfigError, KanalError
from .ingest.enrich import describe_user_agent
from .memory import Trimmer, freeze_start_up, limit_arenas
from .notices import startup_notices
from .runtime import Runtime
from .store.db import masked
from .store.keys import bootstrap
from .tracking.keys import KeyCache
from .tracking.settings import TrackingSettings
from .workers import Supervisor

log = logging.getLogger("kanal.server")


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def start_bounce_receiver(app: Flask) -> BounceServer | None:
    """The bounce (DSN) endpoint, when `[deliverability.bounces] listen` is set."""
    runtime: Runtime = app.extensions["kanal"]
    state: WebhookState = app.extensions["kanal.deliverability"]
    bounces = state.settings.bounces
    if bounces is None or bounces.host is None:
        return None
    keys = KeyCache(TrackingSettings.from_config(runtime.config).keys)
    try:
        return start_receiver(runtime.db, runtime.clock, state.settings, keys,
                              wake=runtime.wake)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def serve(config: Config, *, echo: Callable[[str], None] = print) -> None:
    """Run the collector until SIGTERM or Ctrl-C; workers stop cleanly first.

    KanalError (one line to show) when the address can't be listened on.
    """
    # Before any thread starts: the threads share a few malloc arenas (memory.py).
    limit_arenas()
    # Listen first: a port in use is said before anything else is started or logged.
    built: dict[str, Any] = {}

    def wsgi(environ: Any, start_response: Any) -> Any:
        return built["app"](environ, start_response)

    server = _listen(wsgi, config)
    try:
        app = create_app(config)
        describe_user_agent("Mozilla/5.0")  # the parser's import: not on a first request
    except BaseException:
        server.close()
        raise
    built["app"] = app
    runtime: Runtime = app.extensions["kanal"]
    supervisor: Supervisor = app.extensions["kanal.supervisor"]
    supervisor.notify = echo
    created = bootstrap(runtime.db.conn(), int(runtime.clock.now() * 1000))
    if created:
        echo("First start: created the source 'default' and its keys.")
        echo(f"  public key: {created['public']}")
        echo(f"  secret key: {created['secret']}")
        echo(f"  admin key: {created['admin']}")
        echo("Keep them now: they are shown only this once (see `kanal keys --help`).")
    for line in startup_notices(runtime.db.conn(), now_ms=int(runtime.clock.now() * 1000),
                                policy=app.extensions["kanal.policy"],
                                channels=app.extensions["kanal.channels"]):
        echo(f"Notice: {line}")
    # What start-up made stays: out of the garbage collector's walks (memory.py).
    freeze_start_up()
    port = getattr(server, "effective_port", config.port)
    host = getattr(server, "effective_host", config.host)
    receiver = None
    if config.run_workers:
        try:
            receiver = start_bounce_receiver(app)
        except ConfigError:
            server.close()
            close_app(app)
            raise
        if receiver is not None:
            echo(f"Receiving bounces on {receiver.hostname}:{receiver.port}")
        start_workers(app)
        supervisor.decided.wait(10)  # say now whether this process runs the workers
    else:
        echo("Ingesting only (--no-workers): another `kanal serve` on this database runs "
             "the workers.")
    previous = signal.getsignal(signal.SIGTERM)
    trimmer = Trimmer()
    trimmer.start()
    # The handler goes in, and "listening" is said, only inside the try: a SIGTERM sent
    # as soon as that line is read (a supervisor, the tests) raises SystemExit here, and
    # outside the try it would skip the clean stop below (the workers' lease would stay
    # held until it expires).
    try:
        signal.signal(signal.SIGTERM, _stop)
        echo(f"Kanal listening on http://{host}:{port} (database {masked(config.db)})")
        sys.stdout.flush()
        server.run()  # returns on SIGTERM/Ctrl-C (waitress closes itself)
    except KeyboardInterrupt:
        pass
    finally:
        echo("Stopping: the workers finish their current step…")
        signal.signal(signal.SIGTERM, previous)
        server.close()
        if receiver is not None:
            stop_receiver(receiver)
        close_app(app)
        trimmer.stop()
        echo("Stopped.")


def _listen(app: Any, config: Config) -> Any:
    """The waitress server bound to the configured address, or KanalError saying why
    it can't be (the port is taken, the address isn't this machine's, no permission)."""
    try:
        return create_server(
            app,
            host=config.host,
            port=config.port,
            threads=config.threads,
            ident="kanal",
            backlog=1024,
            connection_limit=1000,
            channel_timeout=60,
            max_request_body_size=1024 * 1024,
            expose_tracebacks=False,
            asyncore_use_poll=True,
        )
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        if exc.errno == errno.EADDRINUSE:
            raise KanalError(
                f"port {config.port} on {config.host} is already in use (another `kanal "
                f"serve`, or another program); stop it, or choose another port with "
                f"--port or [server] port in kanal.toml") from None
        if exc.errno == errno.EACCES:
            raise KanalError(f"not allowed to listen on {where} (ports below 1024 need "
                             "privileges); choose a port above 1023 with --port") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise KanalError(f"can't listen on {where}: {config.host} is not an address "
                             "of this machine; check --host or [server] host") from None
        raise KanalError(f"can't listen on {where}: {exc.strerror or exc}") from None
