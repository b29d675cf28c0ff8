"""create_app(config): the Flask app with its routes, storage and workers wired."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from .admin import admin_blueprint
from .audiences.settings import audience_names
from .audiences.worker import AudienceWorker
from .channels import build_channels
from .clock import Clock, SystemClock
from .config import Config, load_config
from .dashboard import dashboard_blueprint
from .deliverability.routes import deliverability_blueprint
from .errors import ConfigError, HTTPError, StorageError
from .ingest.auth import KeyCache
from .ingest.ratelimit import RateLimiter
from .ingest.routes import ingest_blueprint
from .ingest.suppress import Suppressions
from .ingest.writer import EventWriter
from .ingest.wsgi import IngestMiddleware
from .journeys import Evaluator, JourneysStep, References, TimerWorker
from .journeys.checker import channel_kinds
from .jsonprovider import StrictJSONProvider
from .localtime import default_timezone
from .messages import build_dispatcher
from .messages.callbacks import callbacks_blueprint
from .messages.replies import replies_blueprint
from .nodes import node_id
from .onsite import ConfirmationWorker, OnsiteSettings, OnsiteStep, onsite_blueprint
from .predict.schedule import PredictScheduler
from .predict.settings import PredictSettings
from .products import (
    FeedWorker,
    ProductSettings,
    ProductsStep,
    RecommendationsWorker,
    SignalsWorker,
    template_globals,
)
from .profiles import ProfilesStep, SegmentsStep, SegmentSweeper
from .profiles.identity import default_country
from .reports.attribution import AttributionSettings
from .reports.costs import config_costs
from .reports.credits import AttributionStep
from .reports.engagement import EngagementStep
from .reports.kept_funnels import FunnelStep
from .runtime import Runtime
from .site import site_blueprint
from .store.checkpoints import SAFETY_PAGES
from .store.db import REQUEST_CACHE_KIB, Database
from .store.schema import migrate
from .tracking import tracking_blueprint
from .workers import Processor, StatsStep, Supervisor

log = logging.getLogger("kanal")


def create_app(config: Config | None = None, *, clock: Clock | None = None) -> Flask:
    """Build the collector for `config` (flags, environment, file, defaults).

    The database is migrated here. Workers are built but not started: `start_workers`
    (called by `kanal serve`) starts them.
    """
    config = config or load_config()
    clock = clock or SystemClock()
    # [attribution] and [costs]: a ConfigError now, not a 500 on the first report.
    attribution = AttributionSettings.from_config(config)
    config_costs(config)
    predict = PredictSettings.from_config(config)
    db = Database(config.db, synchronous=config.synchronous, busy_timeout=config.busy_timeout,
                  pool_size=config.threads + 4, thread_cache_kib=REQUEST_CACHE_KIB,
                  # The processor's thread copies the WAL (unless ingest is all this
                  # process does: then its own commits do, as SQLite's default has it).
                  autocheckpoint=SAFETY_PAGES if config.run_workers else None)
    migrate(db.conn())
    wake = threading.Event()
    runtime = Runtime(
        config=config,
        db=db,
        clock=clock,
        writer=EventWriter(db, on_commit=wake.set),
        keys=KeyCache(db),
        limiter=RateLimiter(config.rate_limit, config.rate_burst),
        suppressions=Suppressions(db),
        wake=wake,
        trusted_proxies=[ipaddress.ip_network(c, strict=False) for c in config.trusted_proxies],
    )
    node = node_id()  # this process among the nodes sharing the database
    try:  # settings of kanal.toml checked when the workers are built
        zone = default_timezone(config)
        country = default_country(config)
        products = ProductSettings.from_config(config)
        dispatcher = build_dispatcher(config, db, clock, owner=node,
                                      template_globals=[template_globals(products)])
        audiences = AudienceWorker.from_config(db, clock, config)  # [audiences.NAME]
        confirmations = ConfirmationWorker(db, clock, OnsiteSettings.from_config(config),
                                           build_channels(config), dispatcher.catalog)
    except ValueError as exc:
        db.close()
        raise ConfigError(str(exc)) from None
    except BaseException:
        db.close()
        raise
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.extensions["kanal"] = runtime
    # Journeys send on the configured channels: a step may name any of them.
    channels = dispatcher.channels
    app.extensions["kanal.channels"] = channels
    app.extensions["kanal.policy"] = dispatcher.policy
    app.extensions["kanal.supervisor"] = Supervisor(
        db, clock, [(build_processor(db, runtime.writer.busy, clock=clock, timezone=zone,
                                     channels=channels, products=products,
                                     country=country, attribution=attribution), wake),
                    (SegmentSweeper(db, clock), threading.Event()),
                    (dispatcher, threading.Event()),
                    (TimerWorker(db, clock, journeys_dir=config.journeys_dir,
                                 evaluator=Evaluator(clock=clock, default_timezone=zone,
                                                     channels=channels),
                                 references=References(channels=channel_kinds(channels),
                                                       audiences=audience_names(config))),
                     threading.Event()),
                    (SignalsWorker(db, clock, products, wake=wake), threading.Event()),
                    (RecommendationsWorker(db, clock, products), threading.Event()),
                    (FeedWorker(db, clock, products), threading.Event()),
                    (PredictScheduler(db, config, clock, settings=predict), threading.Event()),
                    (audiences, threading.Event()),
                    (confirmations, threading.Event())],
        poll_interval=config.poll_interval, lease_seconds=config.lease_seconds,
        owner=node, ingest_busy=runtime.writer.busy,
    )
    app.wsgi_app = IngestMiddleware(app.wsgi_app, runtime)  # type: ignore[method-assign]

    @app.teardown_request
    def _release_connection(exc: BaseException | None) -> None:
        db.release()  # PostgreSQL: the request's pooled connection goes back
    app.register_blueprint(ingest_blueprint)
    app.register_blueprint(admin_blueprint)
    app.register_blueprint(site_blueprint)
    app.register_blueprint(tracking_blueprint)
    app.register_blueprint(callbacks_blueprint)
    app.register_blueprint(replies_blueprint)
    app.register_blueprint(deliverability_blueprint)
    app.register_blueprint(dashboard_blueprint)
    app.register_blueprint(onsite_blueprint)
    _register_errors(app)
    return app


IDLE_BATCH = 5000
"""Events a processor batch takes while ingest is quiet (500 while it is busy)."""


def build_processor(db: Database, ingest_busy: Callable[[], bool] | None = None, *,
                    clock: Clock | None = None, timezone: str = "UTC",
                    channels: Mapping[str, Any] | None = None,
                    products: ProductSettings | None = None,
                    country: str | None = None,
                    attribution: AttributionSettings | None = None) -> Processor:
    """The processor with every step, in the order they must run.

    `timezone` is the fallback for people without one (`[journeys] default_timezone`),
    `country` for national phone numbers of people without one (`[profiles]
    default_country`); `channels` are the channels journey sends are queued for (the
    dispatcher's); `products` the `[products]` settings; `attribution` the
    `[attribution]` settings the kept attribution credits follow.
    """
    evaluator = Evaluator(clock=clock, default_timezone=timezone, channels=channels)
    return Processor(db, [StatsStep(), ProfilesStep(default_country=country),
                          SegmentsStep(clock), ProductsStep(products), OnsiteStep(),
                          AttributionStep(attribution), EngagementStep(), FunnelStep(),
                          JourneysStep(evaluator=evaluator)],
                     idle_batch_size=IDLE_BATCH, ingest_busy=ingest_busy)


def start_workers(app: Flask) -> Supervisor:
    """Start the supervisor (it runs the workers while it holds the lease)."""
    supervisor: Supervisor = app.extensions["kanal.supervisor"]
    supervisor.start()
    return supervisor


def close_app(app: Flask) -> None:
    """Stop the workers and close every connection."""
    supervisor: Supervisor = app.extensions["kanal.supervisor"]
    supervisor.stop()
    runtime: Runtime = app.extensions["kanal"]
    runtime.writer.close()
    runtime.db.close()


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> tuple[Response, int]:
    response = jsonify(code=code, message=message)
    if headers:
        response.headers.update(headers)
    return response, status


def _register_errors(app: Flask) -> None:
    @app.errorhandler(HTTPError)
    def _http_error(exc: HTTPError) -> tuple[Response, int]:
        return _error(exc.status, exc.code, exc.message, exc.headers())

    @app.errorhandler(StorageError)
    def _storage_error(exc: StorageError) -> tuple[Response, int]:
        log.error("storage error: %s", exc)
        return _error(503, "unavailable", "the database can't be written; retry later",
                      {"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def _werkzeug_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return _error(exc.code or 500, code, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")
        return _error(500, "internal", "internal error; it has been logged")
