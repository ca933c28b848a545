"""Endpoints, one module per resource; each declares its own `OPERATIONS`."""

from __future__ import annotations

from service.http.endpoints import (
    aliases,
    audit,
    batch_predictions,
    datasets,
    inference,
    jobs,
    model_types,
    models,
    operations,
    predictions,
    streams,
    traffic,
    versions,
    webhooks,
)
from service.http.operation import Operation

OPERATIONS: list[Operation] = [
    *operations.OPERATIONS,
    *model_types.OPERATIONS,
    *models.OPERATIONS,
    *predictions.OPERATIONS,
    *inference.OPERATIONS,
    *jobs.OPERATIONS,
    *streams.OPERATIONS,
    *versions.OPERATIONS,
    *aliases.OPERATIONS,
    *traffic.OPERATIONS,
    *datasets.OPERATIONS,
    *batch_predictions.OPERATIONS,
    *audit.OPERATIONS,
    *webhooks.OPERATIONS,
]
