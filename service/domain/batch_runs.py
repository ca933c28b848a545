"""Running a batch-prediction job: a model version over a dataset query, into a new dataset.

The artifact is loaded through the `ArtifactStore`, so only after its HMAC tag checks out. Input
rows stream through a server-side cursor in chunks of `CHUNK_ROWS`; each chunk is predicted in
a thread and copied into the output table, and `progress` follows. The output table, its rows,
its catalogue row and the job's `succeeded` are one transaction, committed at the end only if
the job is still running: a failed or cancelled job (the worker's heartbeat notices a cancel
within a second and cancels this coroutine) leaves no output dataset. A chunk being predicted
when the cancel lands finishes in its thread; nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.artifacts import signing
from service.artifacts.store import ArtifactStore
from service.domain.batch_predictions import prediction_columns
from service.domain.errors import Conflict, DomainError
from service.domain.job_errors import GiveUp, JobLost
from service.domain.job_rows import compile_or_give_up, dataset_of, plain_rows, timestamp_positions
from service.domain.job_runs import JobRuns
from service.domain.job_specs import BatchPredictSpec, ClaimedJob, DatasetMade
from service.estimators.predicting import Prediction, predict
from service.estimators.table import Table
from service.query import Compiled
from service.repositories.database import Connection, Database, refused_queries
from service.repositories.dataset_tables import DatasetTable
from service.repositories.datasets import DatasetRepository
from service.repositories.jobs import JobRepository
from service.schemas.datasets import ColumnSpec, ColumnTypeName, DatasetCreate

CHUNK_ROWS = 10_000
COUNT_SECONDS = 10.0


@dataclass(frozen=True)
class _Model:
    estimator: Any
    version: int
    features: list[str]
    feature_kinds: dict[str, Any]
    classes: list[Any] | None


class BatchRuns:
    def __init__(self, db: Database, artifacts: ArtifactStore, runs: JobRuns) -> None:
        self.db = db
        self.artifacts = artifacts
        self.runs = runs

    async def run(self, job: ClaimedJob, spec: BatchPredictSpec) -> None:
        """Predicts into the output dataset and succeeds; GiveUp when it cannot succeed."""
        model = await self._load_model(job, spec)
        async with self.db.transaction() as conn:
            with refused_queries():
                await self._predict_into_dataset(conn, job, spec, model)

    async def _load_model(self, job: ClaimedJob, spec: BatchPredictSpec) -> _Model:
        number = spec.version
        try:
            loaded = await self.artifacts.load(job.model_id, number)
        except signing.TamperedArtifact:
            raise GiveUp("TamperedArtifact", "the stored artifact failed verification") from None
        if loaded is None:
            raise GiveUp("VersionGone", f"version {number} of model '{job.model_name}' is gone")
        row = loaded.version
        return _Model(loaded.estimator, number, row.features, row.feature_kinds, row.classes)

    async def _predict_into_dataset(
        self, conn: Connection, job: ClaimedJob, spec: BatchPredictSpec, model: _Model
    ) -> None:
        source = await dataset_of(conn, spec.dataset_id, spec.query.name)
        compiled = compile_or_give_up(spec.query, source, spec.read)
        types = {c.name: c.type for c in source.columns}
        selected = [ColumnSpec(name=c, type=types[c]) for c in spec.select]
        stamps = timestamp_positions(source, compiled.columns)
        pick = _picker([compiled.columns.index(f) for f in model.features])
        total = await self._count(compiled)
        output_id = await DatasetRepository(conn).next_id()
        table = DatasetTable(conn, output_id)
        writer: _Writer | None = None
        done = 0
        async with contextlib.aclosing(
            DatasetTable(conn, source.id).chunks(compiled, CHUNK_ROWS)
        ) as chunks:
            async for chunk in chunks:
                rows = pick(plain_rows(chunk, stamps))
                features = Table(model.features, rows, "$.rows", "records")
                result = await asyncio.to_thread(_predict, model, features, spec.output, done)
                if writer is None:
                    writer = _Writer.start(selected, result)
                    await table.create(writer.columns)
                await table.copy_records(writer.names, writer.records(chunk, result))
                done += len(chunk)
                if total:
                    await self.runs.progress(job.id, done / total)
        if writer is None:  # no rows: the columns still tell what a prediction would be
            writer = _Writer.empty(selected, model, spec.output)
            await table.create(writer.columns)
        await _finish(conn, job, spec, output_id, writer.columns, done, model)

    async def _count(self, compiled: Compiled) -> int | None:
        """The input's row count for `progress`, if PostgreSQL can tell within COUNT_SECONDS."""
        async with self.db.connection() as conn:
            return await DatasetTable.count_of(conn, compiled, COUNT_SECONDS)


def _picker(positions: list[int]) -> Callable[[list[list[Any]]], list[Any]]:
    """Rows → tuples of the values at `positions` (the model's features, in its order)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda rows: [(row[only],) for row in rows]
    getter = operator.itemgetter(*positions)
    return lambda rows: list(map(getter, rows))


def _predict(model: _Model, features: Table, output: str, offset: int) -> Prediction:
    try:
        return predict(model.estimator, model.features, model.feature_kinds, features, output)
    except DomainError as exc:
        details = "; ".join(f"{_shift(e.loc, offset)}: {e.msg}" for e in exc.errors[:5])
        raise GiveUp(type(exc).__name__, f"{exc.detail} ({details})") from None


def _shift(loc: str, offset: int) -> str:
    """`$.rows[3].x` of a chunk starting at row `offset` → `row 1003 (x)`, rows from 0."""
    if loc.startswith("$.rows[") and "]" in loc:
        index, _, rest = loc[len("$.rows[") :].partition("]")
        if index.isdigit():
            column = rest.lstrip(".")
            return f"row {int(index) + offset}" + (f" ({column})" if column else "")
    return loc


_CONVERT: dict[ColumnTypeName, Callable[[Any], Any]] = {
    "boolean": bool,
    "integer": int,
    "float": float,
    "text": str,
}


@dataclass(frozen=True)
class _Writer:
    """The output table's columns and how a chunk's rows become its records."""

    columns: list[ColumnSpec]
    inputs: int  # how many leading columns come from the input rows
    convert: Callable[[Any], Any]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @staticmethod
    def start(selected: list[ColumnSpec], result: Prediction) -> _Writer:
        values = result.values
        width = None if values.ndim == 1 else int(values.shape[1])
        kind = _kind(values)
        names = prediction_columns(result.output, width, result.classes)
        return _Writer._checked(selected, names, kind)

    @staticmethod
    def empty(selected: list[ColumnSpec], model: _Model, output: str) -> _Writer:
        if output == "predict_proba" and model.classes:
            names = prediction_columns(output, len(model.classes), model.classes)
            return _Writer._checked(selected, names, "float")
        if output == "predict":
            return _Writer._checked(selected, ["prediction"], _label_kind(model.classes))
        return _Writer._checked(selected, prediction_columns(output, None, None), "float")

    @staticmethod
    def _checked(selected: list[ColumnSpec], names: list[str], kind: ColumnTypeName) -> _Writer:
        clashes = {c.name for c in selected} & set(names)
        if clashes:
            raise GiveUp(
                "InvalidInput",
                f"prediction column(s) {sorted(clashes)} clash with selected input columns;"
                " select fewer columns",
            )
        columns = [*selected, *(ColumnSpec(name=n, type=kind) for n in names)]
        return _Writer(columns, len(selected), _CONVERT.get(kind, str))

    def records(
        self, chunk: Sequence[tuple[Any, ...]], result: Prediction
    ) -> list[tuple[Any, ...]]:
        convert, n = self.convert, self.inputs
        predicted = result.values.tolist()
        if result.values.ndim == 1:
            return [
                (*row[:n], None if p is None else convert(p))
                for row, p in zip(chunk, predicted, strict=True)
            ]
        return [
            (*row[:n], *(None if v is None else convert(v) for v in p))
            for row, p in zip(chunk, predicted, strict=True)
        ]


def _kind(values: np.ndarray) -> ColumnTypeName:
    kind = values.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "integer"
    if kind == "f":
        return "float"
    if kind == "O" and values.size:
        return _label_kind([values.flat[0]])
    return "text"


def _label_kind(labels: Sequence[Any] | None) -> ColumnTypeName:
    if labels and all(isinstance(v, bool) for v in labels):
        return "boolean"
    if labels and all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return "integer"
    if labels and all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
        return "float"
    return "text"


async def _finish(
    conn: Connection,
    job: ClaimedJob,
    spec: BatchPredictSpec,
    output_id: int,
    columns: list[ColumnSpec],
    rows: int,
    model: _Model,
) -> None:
    """Commit point: catalogue row and job result, only while the job is still ours."""

    if not await JobRepository(conn).lock_if_running(job.id):
        raise JobLost(str(job.id))
    name = spec.output_dataset
    meta = DatasetCreate(
        name=name,
        description=f"Batch prediction ({spec.output}) of model '{job.model_name}'"
        f" version {model.version}, job {job.id}",
        source=f"/models/{job.model_name}/versions/{model.version}",
    )
    try:
        await DatasetRepository(conn).insert(output_id, meta, columns, rows, job.created_by)
    except Conflict as exc:
        raise GiveUp("Conflict", exc.detail) from None
    await JobRepository(conn).succeed(job.id, DatasetMade(dataset=name, rows=rows))
