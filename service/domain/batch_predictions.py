"""Batch predictions: a job that runs a model version over a dataset query into a new dataset.

Submission checks everything it can while the client is still there (the model can predict,
the version and output exist, the dataset and its query are valid and hold the model's
features, the output name is free), then stores the job and enqueues it after the commit, as
training does. The worker (`service/worker/batch_predict.py`) writes the output dataset in one
transaction that also marks the job succeeded, so a failed or cancelled job leaves nothing.
The output holds the selected input columns (default: all) plus the prediction columns named by
`prediction_columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from service.domain.dataset_columns import name_problem
from service.domain.datasets import compile_stored, plan_dataset
from service.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from service.domain.jobs import IdempotencyKey, Jobs, Submitted
from service.estimators.predicting import class_key
from service.repositories.database import Connection
from service.repositories.datasets import DatasetRepository
from service.repositories.models import ModelRow
from service.repositories.versions import VersionRepository
from service.schemas.training import BatchPredictRequest

KIND = "batch_predict"
_PREFIXES = {
    "predict": "prediction",
    "predict_proba": "proba",
    "decision_function": "decision",
    "transform": "component",
}


def prediction_columns(output: str, width: int | None, classes: Sequence[Any] | None) -> list[str]:
    """Names of the output columns: `prediction` for a 1-D `predict`, `proba_<class>` per class
    for `predict_proba` (`proba_<i>` when a class gives no valid column name), and
    `<prefix>_<i>` per column otherwise (`prediction`, `decision`, `component`); `width` is
    None for a 1-D result."""
    prefix = _PREFIXES.get(output, output)
    if width is None:
        return [prefix]
    if output == "predict_proba" and classes is not None and len(classes) == width:
        names = [f"proba_{class_key(label)}" for label in classes]
        if len(set(names)) == width and all(name_problem(n) is None for n in names):
            return names
    return [f"{prefix}_{i}" for i in range(width)]


class BatchPredictions:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs

    async def submit(
        self, name: str, body: BatchPredictRequest, who: str, idem: IdempotencyKey | None
    ) -> Submitted:
        async def plan(conn: Connection, model: ModelRow) -> dict[str, Any]:
            return await _plan(conn, model, body)

        return await self.jobs.submit_job(name, KIND, who, idem, plan)


async def _plan(conn: Connection, model: ModelRow, body: BatchPredictRequest) -> dict[str, Any]:
    if not model.can_output:
        raise Conflict(f"model '{model.name}' does not produce outputs")
    number = body.version if body.version is not None else model.current_version
    if number is None:
        raise Conflict(f"model '{model.name}' has no trained version yet")
    version = await VersionRepository(conn).get_row(model.id, number)
    if version is None:
        raise NotFound(f"model '{model.name}' has no version {number}")
    output = body.output or (
        "predict" if "predict" in version.outputs else [*version.outputs, "predict"][0]
    )
    if output not in version.outputs:
        offered = ", ".join(version.outputs)
        raise InvalidInput(
            "unavailable output",
            [FieldError("$.output", f"version {number} offers {offered}, not {output!r}")],
        )
    planned = await plan_dataset(conn, body.dataset)
    every = {c.name for c in planned.dataset.columns}
    missing = [f for f in version.features if f not in every]
    if missing:
        raise InvalidInput(
            f"dataset '{planned.dataset.name}' lacks feature column(s) "
            + ", ".join(repr(f) for f in missing),
            [
                FieldError("$.dataset.name", f"no column {f!r}, a feature of the model")
                for f in missing
            ],
        )
    read = [*planned.columns, *(f for f in version.features if f not in planned.columns)]
    compile_stored(body.dataset, planned.dataset, read)
    if output == "predict" or (output == "predict_proba" and version.classes):
        width = len(version.classes or []) if output == "predict_proba" else None
        clashes = set(prediction_columns(output, width, version.classes)) & set(planned.columns)
        if clashes:
            raise InvalidInput(
                "an input column has the name of a prediction column",
                [FieldError("$.dataset.select", f"select without {c!r}") for c in sorted(clashes)],
            )
    if await DatasetRepository(conn).exists(body.output_dataset):
        raise Conflict(f"dataset '{body.output_dataset}' already exists")
    return {
        "version": number,
        "output": output,
        "dataset_id": planned.dataset.id,
        "query": msgspec.to_builtins(body.dataset),
        "select": planned.columns,
        "read": read,
        "output_dataset": body.output_dataset,
    }
