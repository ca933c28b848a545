"""Training rows from a dataset, read by the worker itself (never through the api or Redis).

`JobRunner.dataset_loader` (installed in `context.py`) runs a train or update job's stored
dataset query through a server-side cursor in one read-only snapshot, and stores the rows as a
training batch: the version then refers to that batch, so later non-incremental updates refit on
exactly these rows even after the dataset changed. The batch id and the row count are written
into the job's spec in the same transaction as the batch, so a retried attempt reuses the batch
instead of reading the dataset again, and the version's `source` records the dataset query and
the number of rows it gave.

A job whose dataset or query no longer works (dataset deleted, too many rows, no rows) fails
with a message naming the problem; it is not retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from service.domain import batches
from service.domain.datasets import compile_stored
from service.domain.errors import DomainError
from service.query import ColumnType, Compiled
from service.repositories.database import OUTAGE_ERRORS, Connection, Database
from service.repositories.datasets import (
    DatasetRepository,
    DatasetRow,
    DatasetTable,
    plain_value,
)
from service.repositories.jobs import JobRepository, JobRow
from service.repositories.versions import BatchRepository
from service.schemas.training import DatasetQuery
from service.settings import Settings
from service.worker.errors import JobLost

FETCH_ROWS = 10_000


class GiveUp(Exception):
    """The job cannot succeed; it is marked failed with this error and not retried."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def dataset_loader(settings: Settings) -> Callable[[Connection, JobRow], Awaitable[list[int]]]:
    """The `JobRunner.dataset_loader` of a worker with these settings."""

    async def load(conn: Connection, job: JobRow) -> list[int]:
        try:
            with refused_queries():
                return await load_training_rows(conn, job, settings.worker.max_train_rows)
        except GiveUp as exc:
            await fail_job(conn, job, exc.error_type, exc.message)

            raise JobLost(str(job.id)) from exc

    return load


async def load_training_rows(conn: Connection, job: JobRow, max_rows: int) -> list[int]:
    """Reads the job's dataset query into one training batch; returns `[batch id]`."""
    spec = job.spec
    query = msgspec.convert(spec["source"]["query"], DatasetQuery)
    read = [*spec["features"], *([spec["target"]] if spec["target"] else [])]
    rows: list[list[Any]] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        dataset = await dataset_of(conn, spec["dataset_id"], query.name)
        compiled = compile_or_give_up(query, dataset, read)
        # By output type, so that an aggregate such as min(timestamp) is converted too.
        timestamps = [i for i, t in enumerate(compiled.column_types) if t is ColumnType.TIMESTAMP]
        exact = exact_positions(query, compiled)
        async for chunk in DatasetTable(conn, dataset.id).chunks(compiled, FETCH_ROWS):
            rows.extend(exact_as_numbers(plain_rows(chunk, timestamps), exact))
            if len(rows) > max_rows:
                raise GiveUp(
                    "TooManyRows",
                    f"the dataset query gives more than {max_rows} rows (worker.max_train_rows);"
                    " narrow it with `where` or `limit`",
                )
    if not rows:
        raise GiveUp("NoRows", f"the query over dataset '{query.name}' matched no rows")
    batch = batches.Batch(columns=list(compiled.columns), rows=rows)
    async with conn.transaction():
        batch_id = await BatchRepository(conn).insert(
            job.model_id, job.id, batch.columns, len(rows), batches.encode(batch)
        )
        source = {**spec["source"], "rows": len(rows)}
        await JobRepository(conn).add_to_spec(job.id, {"batch_id": batch_id, "source": source})
        spec["batch_id"], spec["source"] = batch_id, source
    return [batch_id]


@contextlib.contextmanager
def refused_queries() -> Iterator[None]:
    """A query PostgreSQL refuses (a statement timeout on a very selective filter, say) fails
    the job with its message; losing the database is still an infrastructure error (retried)."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if isinstance(exc, OUTAGE_ERRORS):
            raise
        raise GiveUp("DatabaseError", f"PostgreSQL refused the dataset query: {exc}") from None


async def dataset_of(conn: Connection, dataset_id: int, name: str) -> DatasetRow:
    dataset = await DatasetRepository(conn).get_by_id(dataset_id)
    if dataset is None:
        raise GiveUp("DatasetGone", f"dataset '{name}' was deleted after the job was submitted")
    return dataset


def compile_or_give_up(query: DatasetQuery, dataset: DatasetRow, read: Sequence[str]) -> Compiled:
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


async def fail_job(conn: Connection, job: JobRow, error_type: str, message: str) -> None:
    await JobRepository(conn).fail([job.id], error_type, message)


async def fail_job_in(db: Database, job: JobRow, error_type: str, message: str) -> None:
    async with db.connection() as conn:
        await fail_job(conn, job, error_type, message)
