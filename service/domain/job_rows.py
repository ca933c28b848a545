"""Rows from a dataset, read for a job by the worker itself (never through the api or Redis).

A train or update job's stored dataset query runs through a server-side cursor in one read-only
snapshot, and its rows are stored as a training batch of the job: the version then refers to
that batch, so later non-incremental updates refit on exactly these rows even after the dataset
changed, and a retried attempt finds the batch (`BatchRepository.of_job`) instead of reading the
dataset again. Batch predictions read their input with the same helpers.

A job whose dataset or query no longer works (dataset deleted, too many rows, no rows) fails
with a message naming the problem (`GiveUp`); it is not retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from service.domain import batches
from service.domain.dataset_queries import compile_stored
from service.domain.errors import DomainError
from service.domain.job_errors import GiveUp
from service.domain.job_specs import ClaimedJob, DatasetSource, FitSpec
from service.query import ColumnType, Compiled
from service.repositories.database import Connection, Database, refused_queries
from service.repositories.dataset_tables import DatasetTable, plain_value
from service.repositories.datasets import DatasetRepository, DatasetRow
from service.repositories.versions import BatchRepository, StoredBatch
from service.schemas.training import DatasetQuery, DatasetSelection

FETCH_ROWS = 10_000


async def read_training_rows(
    db: Database, job: ClaimedJob, spec: FitSpec, max_rows: int
) -> StoredBatch:
    """Reads the job's dataset query into one training batch of the job."""
    assert isinstance(spec.source, DatasetSource) and spec.dataset_id is not None
    query = spec.source.query
    read = [*spec.features, *([spec.target] if spec.target else [])]
    async with db.snapshot() as conn:
        with refused_queries():
            dataset = await dataset_of(conn, spec.dataset_id, query.name)
            compiled = compile_or_give_up(query, dataset, read)
            # By output type, so that an aggregate such as min(timestamp) is converted too.
            timestamps = [
                i for i, t in enumerate(compiled.column_types) if t is ColumnType.TIMESTAMP
            ]
            exact = exact_positions(query, compiled)
            # Encoded chunk by chunk: the worker holds the rows as msgpack, never as lists.
            batch = batches.BatchWriter(list(compiled.columns))
            async for chunk in DatasetTable(conn, dataset.id).chunks(compiled, FETCH_ROWS):
                batch.add(exact_as_numbers(plain_rows(chunk, timestamps), exact))
                if batch.rows > max_rows:
                    raise GiveUp(
                        "TooManyRows",
                        f"the dataset query gives more than {max_rows} rows"
                        " (worker.max_train_rows); narrow it with `where` or `limit`",
                    )
    if not batch.rows:
        raise GiveUp("NoRows", f"the query over dataset '{query.name}' matched no rows")
    rows = batch.rows
    async with db.transaction() as conn:
        batch_id = await BatchRepository(conn).insert(
            job.model_id, job.id, batch.columns, rows, batch.finish()
        )
    return StoredBatch(batch_id, rows)


async def dataset_of(conn: Connection, dataset_id: int, name: str) -> DatasetRow:
    dataset = await DatasetRepository(conn).get_by_id(dataset_id)
    if dataset is None:
        raise GiveUp("DatasetGone", f"dataset '{name}' was deleted after the job was submitted")
    return dataset


def compile_or_give_up(
    query: DatasetSelection, dataset: DatasetRow, read: Sequence[str]
) -> Compiled:
    try:
        return compile_stored(query, dataset, read)
    except DomainError as exc:
        details = "; ".join(f"{e.loc}: {e.msg}" for e in exc.errors[:5])
        raise GiveUp("InvalidInput", f"{exc.detail} ({details})") from None


def timestamp_positions(dataset: DatasetRow, columns: Sequence[str]) -> list[int]:
    stamps = {c.name for c in dataset.columns if c.type == "timestamp"}
    return [i for i, name in enumerate(columns) if name in stamps]


def plain_rows(chunk: Sequence[tuple[Any, ...]], timestamps: Sequence[int]) -> list[list[Any]]:
    """Rows as JSON would carry them: timestamps become RFC 3339 text (as sent inline)."""
    if not timestamps:
        return [list(row) for row in chunk]
    out = []
    for row in chunk:
        values = list(row)
        for i in timestamps:
            if isinstance(values[i], datetime):
                values[i] = rfc3339(values[i])
        out.append(values)
    return out


def exact_positions(query: DatasetQuery, compiled: Compiled) -> list[tuple[int, ColumnType]]:
    """Where a grouped query's sum/avg/stddev results may be: numeric output columns."""
    if not (query.group_by or query.aggregate):
        return []
    numeric = (ColumnType.INTEGER, ColumnType.FLOAT)
    return [(i, t) for i, t in enumerate(compiled.column_types) if t in numeric]


def exact_as_numbers(
    rows: list[list[Any]], positions: Sequence[tuple[int, ColumnType]]
) -> list[list[Any]]:
    """Exact aggregates (Decimal) as the numbers `GET /datasets/{name}/rows` shows."""
    if positions:
        for row in rows:
            for i, type_ in positions:
                row[i] = plain_value(row[i], type_)
    return rows


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
