"""Running a batch-prediction job: a model version over a dataset query, into a new dataset.

The artifact is loaded only after its HMAC tag checks out (as the api's registry does). Input
rows stream through a server-side cursor in chunks of `CHUNK_ROWS`; each chunk is predicted in
a thread and copied into the output table, and `progress` follows. The output table, its rows,
its catalogue row and the job's `succeeded` are one transaction, committed at the end only if
the job is still running: a failed or cancelled job (the heartbeat notices a cancel within a
second and cancels this coroutine) leaves no output dataset. A chunk being predicted when the
cancel lands finishes in its thread; nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from service.artifacts import signing
from service.domain.batch_predictions import prediction_columns
from service.domain.errors import Conflict, DomainError
from service.estimators.predicting import Prediction, predict
from service.estimators.table import Table
from service.query import Compiled
from service.repositories.database import Connection
from service.repositories.datasets import DatasetRepository, DatasetTable
from service.repositories.jobs import JobRepository, JobRow
from service.repositories.versions import VersionRepository
from service.schemas.datasets import ColumnSpec, ColumnTypeName, DatasetCreate
from service.schemas.training import DatasetQuery
from service.worker.dataset_loader import (
    GiveUp,
    compile_or_give_up,
    dataset_of,
    fail_job_in,
    plain_rows,
    refused_queries,
    timestamp_positions,
)
from service.worker.errors import JobLost

if TYPE_CHECKING:
    from service.worker.execution import JobRunner

CHUNK_ROWS = 10_000
COUNT_SECONDS = 10.0


@dataclass(frozen=True)
class _Model:
    estimator: Any
    version: int
    features: list[str]
    feature_kinds: dict[str, Any]
    classes: list[Any] | None


async def run_batch_predict(runner: JobRunner, job: JobRow) -> None:
    try:
        model = await _load_model(runner, job)
        with refused_queries():
            async with runner.db.connection() as conn, conn.transaction():
                await _predict_into_dataset(runner, conn, job, model)
    except GiveUp as exc:
        await fail_job_in(runner.db, job, exc.error_type, exc.message)


async def _load_model(runner: JobRunner, job: JobRow) -> _Model:
    number = int(job.spec["version"])
    async with runner.db.connection() as conn:
        versions = VersionRepository(conn)
        row = await versions.get_row(job.model_id, number)
        data = await versions.artifact(job.model_id, number) if row is not None else None
    if row is None or data is None:
        raise GiveUp("VersionGone", f"version {number} of model '{job.model_name}' is gone")
    try:
        estimator = await asyncio.to_thread(
            signing.load_verified,
            data,
            row.artifact_hmac,
            row.artifact_sha256,
            runner.settings.artifacts.hmac_key,
        )
    except signing.TamperedArtifact:
        raise GiveUp("TamperedArtifact", "the stored artifact failed verification") from None
    return _Model(estimator, number, row.features, row.feature_kinds, row.classes)


async def _predict_into_dataset(
    runner: JobRunner, conn: Connection, job: JobRow, model: _Model
) -> None:
    spec = job.spec
    query = msgspec.convert(spec["query"], DatasetQuery)
    source = await dataset_of(conn, spec["dataset_id"], query.name)
    compiled = compile_or_give_up(query, source, spec["read"])
    types = {c.name: c.type for c in source.columns}
    selected: list[str] = spec["select"]
    stamps = timestamp_positions(source, compiled.columns)
    pick = _picker([compiled.columns.index(f) for f in model.features])
    total = await _count(runner, compiled)
    output_id = await DatasetRepository(conn).next_id()
    table = DatasetTable(conn, output_id)
    writer: _Writer | None = None
    done = 0
    async with contextlib.aclosing(
        DatasetTable(conn, source.id).chunks(compiled, CHUNK_ROWS)
    ) as chunks:
        async for chunk in chunks:
            features = Table(model.features, pick(plain_rows(chunk, stamps)), "$.rows", "records")
            result = await asyncio.to_thread(_predict, model, features, spec["output"], done)
            if writer is None:
                writer = _Writer.start(
                    [ColumnSpec(name=c, type=types[c]) for c in selected], result
                )
                await table.create(writer.columns)
            await table.copy_records(writer.names, writer.records(chunk, result))
            done += len(chunk)
            if total:
                await _progress(runner, job, done / total)
    if writer is None:  # no rows: the columns still tell what a prediction would be
        writer = _Writer.empty([ColumnSpec(name=c, type=types[c]) for c in selected], model, spec)
        await table.create(writer.columns)
    await _finish(conn, job, output_id, writer.columns, done, model)


async def _count(runner: JobRunner, compiled: Compiled) -> int | None:
    """The input's row count for `progress`, if PostgreSQL can tell within COUNT_SECONDS."""
    async with runner.db.connection() as conn:
        try:
            total = await conn.fetchval(compiled.count_sql, *compiled.args, timeout=COUNT_SECONDS)
        except TimeoutError:
            return None
    return int(total)


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
    def empty(selected: list[ColumnSpec], model: _Model, spec: dict[str, Any]) -> _Writer:
        output = spec["output"]
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


async def _progress(runner: JobRunner, job: JobRow, fraction: float) -> None:
    async with runner.db.connection() as conn:
        await JobRepository(conn).set_progress(job.id, min(fraction, 0.99))


async def _finish(
    conn: Connection,
    job: JobRow,
    output_id: int,
    columns: list[ColumnSpec],
    rows: int,
    model: _Model,
) -> None:
    """Commit point: catalogue row and job result, only while the job is still ours."""

    if not await JobRepository(conn).lock_if_running(job.id):
        raise JobLost(str(job.id))
    name = job.spec["output_dataset"]
    meta = DatasetCreate(
        name=name,
        description=f"Batch prediction ({job.spec['output']}) of model '{job.model_name}'"
        f" version {model.version}, job {job.id}",
        source=f"/models/{job.model_name}/versions/{model.version}",
    )
    try:
        await DatasetRepository(conn).insert(output_id, meta, columns, rows, job.created_by)
    except Conflict as exc:
        raise GiveUp("Conflict", exc.detail) from None
    await JobRepository(conn).succeed(job.id, {"dataset": name, "rows": rows})
