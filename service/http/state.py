"""The long-lived resources of one api process, built in the lifespan and read by endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from starlette.requests import Request

from service.auth.principal import Authenticator
from service.domain.aliases import Aliases
from service.domain.batch_predictions import BatchPredictions
from service.domain.datasets import Datasets
from service.domain.jobs import Jobs
from service.domain.model_types import ModelTypes
from service.domain.models import Models
from service.domain.streams import Streams
from service.domain.traffic import Traffic
from service.domain.versions import Versions
from service.domain.webhooks import Webhooks
from service.estimators.catalogue import Catalogue
from service.http.metrics import ApiMetrics
from service.http.rate_limits import RateLimits
from service.repositories.database import Database
from service.serving.predictor import Predictor
from service.serving.registry import ModelRegistry
from service.serving.traffic_figures import TrafficFigures
from service.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: ArqRedis
    metrics: ApiMetrics
    auth: Authenticator
    migrations: list[str]
    catalogue: Catalogue
    model_types: ModelTypes
    models: Models
    jobs: Jobs
    versions: Versions
    aliases: Aliases
    traffic: Traffic
    figures: TrafficFigures
    registry: ModelRegistry
    predictor: Predictor
    datasets: Datasets
    batch_predictions: BatchPredictions
    webhooks: Webhooks
    streams: Streams
    rate_limits: RateLimits | None = None  # None: `limits.rate_per_second` is 0


def services(request: Request) -> Services:
    # The lifespan's state, read from the scope: `request.state` would build a `State` per
    # request, and the dispatcher and endpoint ask several times.
    value = request.scope["state"]["services"]
    assert isinstance(value, Services)
    return value
