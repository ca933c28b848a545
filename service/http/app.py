"""`create_app(settings)`: the Starlette application, with no module-level state."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import swagger_ui_bundle
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from service import __version__
from service.artifacts.keys import Keyring
from service.auth.factory import build_authenticator
from service.domain.aliases import Aliases
from service.domain.batch_predictions import BatchPredictions
from service.domain.catalogue import keep_syncing_until_done, sync_catalogue
from service.domain.datasets import Datasets
from service.domain.errors import QueryTimeout, Unavailable
from service.domain.jobs import Jobs
from service.domain.model_types import ModelTypes
from service.domain.models import Models
from service.domain.stream_hub import StreamHub
from service.domain.streams import Streams
from service.domain.traffic import Traffic
from service.domain.versions import Versions
from service.domain.webhooks import Webhooks
from service.estimators.catalogue import load_catalogue
from service.estimators.limits import SettingLimits
from service.http.draining import Drain
from service.http.edge import Edge
from service.http.endpoints import OPERATIONS
from service.http.metrics import ApiMetrics
from service.http.openapi import build_openapi
from service.http.problems import exception_handlers
from service.http.rate_limits import RateLimits
from service.http.routes import build_routes
from service.http.state import Services
from service.http.tracing import traced
from service.jobs.queue import JobQueue
from service.jobs.redis import connect as connect_redis
from service.repositories.database import Database
from service.repositories.migrator import discover
from service.serving.model_metrics import ModelMetrics
from service.serving.predictor import Predictor
from service.serving.registry import ModelRegistry
from service.serving.traffic_figures import TrafficFigures
from service.settings import ConfigError, Settings
from service.webhooks.secrets import SecretBox

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Starlette:
    metrics = ApiMetrics()
    model_metrics = ModelMetrics(metrics.registry, settings.metrics.per_model_limit)
    limits = SettingLimits.of(msgspec.structs.asdict(settings.models.limits))
    catalogue = load_catalogue(settings.models.plugins, limits)
    expected_migrations = [m.version for m in discover()]
    # Built here, not in the lifespan, so a bad [auth], [artifacts] or [webhooks] section is a
    # ConfigError before serving.
    auth = build_authenticator(settings.auth)
    artifact_keys = Keyring.from_settings(settings.artifacts)
    try:
        secrets = SecretBox.from_settings(settings)
    except ValueError as exc:  # no key to seal webhook secrets with
        raise ConfigError(str(exc)) from None
    # Built here, not in the lifespan, so the server can end open streams (`begin_drain`) the
    # moment it is told to stop: Hypercorn waits for open responses before the lifespan ends.
    hub = StreamHub(settings.database, settings.streams.max_streams_per_caller)
    drain = Drain()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        db = Database(settings.database)
        await db.start()
        redis = connect_redis(settings.redis)
        queue = JobQueue(redis, settings.redis.queue_name)
        registry = ModelRegistry(db, artifact_keys, settings.models.cache_bytes, model_metrics)
        await registry.start()
        figures = TrafficFigures(redis, key_prefix=f"{settings.redis.queue_name}:traffic:")
        await figures.start()
        await hub.start()
        predictor = Predictor(registry, figures, settings)
        jobs = Jobs(db, queue, catalogue, settings.worker, settings.limits.active_jobs_per_tenant)
        svc = Services(
            settings=settings,
            db=db,
            redis=redis,
            metrics=metrics,
            auth=auth,
            migrations=expected_migrations,
            catalogue=catalogue,
            model_types=ModelTypes(db),
            models=Models(db, catalogue),
            jobs=jobs,
            versions=Versions(db),
            aliases=Aliases(db),
            traffic=Traffic(db),
            figures=figures,
            registry=registry,
            predictor=predictor,
            datasets=Datasets(db, settings.http.spool_dir),
            batch_predictions=BatchPredictions(jobs),
            webhooks=Webhooks(
                db,
                secrets,
                settings.webhooks.allow_private,
                settings.webhooks.max_webhooks_per_tenant,
            ),
            streams=Streams(db, hub, settings.streams),
            rate_limits=RateLimits.from_settings(
                redis, settings.limits, settings.redis.queue_name, metrics
            ),
        )
        sync: asyncio.Task[None] | None = None
        try:
            await sync_catalogue(db, catalogue)
        except (Unavailable, QueryTimeout):  # start anyway; the sync retries in the background
            sync = asyncio.create_task(keep_syncing_until_done(db, catalogue, retry_seconds=2.0))
        log.info("api started", extra={"version": __version__})
        # What start-up made (modules, the catalogue, scikit-learn's and numpy's own objects)
        # lives as long as the process: out of the collector's reach, a full collection walks
        # only what requests made, and a many-row request no longer pauses every other one.
        gc.collect()
        gc.freeze()
        try:
            yield {"services": svc}
        finally:
            if sync is not None:
                sync.cancel()
            await hub.close()
            await predictor.close()
            await figures.close()
            await registry.close()
            await auth.close()
            await redis.aclose()
            await db.close()

    routes = [
        *build_routes(OPERATIONS),
        Mount("/docs/static", StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path))),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Edge, metrics=metrics, log_access=settings.http.access_log, drain=drain),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    # No 307 from `/models/` to `/models`: a name of `/` (`/models/%2F`) would land on the
    # collection. Every path is fixed by the contract; any other is a 404 problem.
    app.router.redirect_slashes = False
    app.state.stream_hub = hub
    app.state.drain = drain
    app.state.openapi = msgspec.json.encode(
        build_openapi(OPERATIONS, "models-service", __version__)
    )
    return traced(app, settings.tracing)


def begin_drain(app: Starlette) -> Drain:
    """The server is told to stop: open event streams end now, cleanly, so they do not hold
    the graceful timeout (clients reconnect to another replica), and every response from now
    on says `Connection: close` (see `service.http.draining`)."""
    hub = app.state.stream_hub
    assert isinstance(hub, StreamHub)
    drain = app.state.drain
    assert isinstance(drain, Drain)
    drain.draining = True
    hub.drain()
    return drain
