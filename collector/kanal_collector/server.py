"""`kanal serve`: the WSGI server and the workers in one process."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType

from flask import Flask
from waitress.server import create_server

from .app import close_app, create_app, start_workers
from .config import Config
from .deliverability.receiver import BounceServer, start_receiver, stop_receiver
from .deliverability.routes import WebhookState
from .errors import ConfigError
from .notices import startup_notices
from .runtime import Runtime
from .store.keys import bootstrap
from .tracking.keys import KeyCache
from .tracking.settings import TrackingSettings

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
    """Run the collector until SIGTERM or Ctrl-C; workers stop cleanly first."""
    app = create_app(config)
    runtime: Runtime = app.extensions["kanal"]
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
    server = create_server(
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
    previous = signal.signal(signal.SIGTERM, _stop)
    echo(f"Kanal listening on http://{host}:{port} (database {config.db})")
    sys.stdout.flush()
    try:
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
        echo("Stopped.")
