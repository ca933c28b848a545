"""The dataset catalogue (`dataset_catalogue`) and the dataset tables (`datasets."d_<id>"`).

No client-supplied text is ever part of SQL here: a table is named from its catalogue id, column
names come from the catalogue (checked when the dataset was created) and are always quoted, and
every value is a bind parameter or travels through COPY.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from service.domain.errors import Conflict
from service.query import Column, ColumnType, Source, quote_ident
from service.repositories.database import Connection
from service.schemas.datasets import ColumnSpec, ColumnTypeName, DatasetCreate

SCHEMA = "datasets"
ROW_ID = "__row"  # hidden identity column of every dataset table: upload order, tiebreak
COPY_TIMEOUT = "15min"  # a streamed upload is one statement; the body limit bounds it too

SQL_TYPES: Mapping[ColumnTypeName, str] = {
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "text": "text",
    "timestamp": "timestamptz",
}
QUERY_TYPES: Mapping[ColumnTypeName, ColumnType] = {
    "integer": ColumnType.INTEGER,
    "float": ColumnType.FLOAT,
    "boolean": ColumnType.BOOLEAN,
    "text": ColumnType.TEXT,
    "timestamp": ColumnType.TIMESTAMP,
}


class DatasetRow(msgspec.Struct, kw_only=True):
    id: int
    name: str
    title: str | None
    description: str | None
    tags: list[str]
    source: str | None
    columns: list[ColumnSpec]
    row_count: int
    created_by: str
    tenant: str
    created_at: datetime
    updated_at: datetime


_FIELDS = ", ".join(DatasetRow.__struct_fields__)

CATALOGUE = Source(
    from_sql="dataset_catalogue",
    columns=[
        Column("name", ColumnType.TEXT),
        Column("title", ColumnType.TEXT),
        Column("description", ColumnType.TEXT),
        Column("tags", ColumnType.TEXT_ARRAY),
        Column("source", ColumnType.TEXT),
        Column("rows", ColumnType.INTEGER, sql='"row_count"'),
        Column("created_by", ColumnType.TEXT),
        Column("tenant", ColumnType.TEXT),
        Column("created_at", ColumnType.TIMESTAMP),
        Column("updated_at", ColumnType.TIMESTAMP),
        Column("columns", ColumnType.JSON),
    ],
    tiebreak=["name"],
)


def table_name(dataset_id: int) -> str:
    return f"d_{int(dataset_id)}"


def qualified_name(dataset_id: int) -> str:
    return f"{SCHEMA}.{quote_ident(table_name(dataset_id))}"


def rows_source(dataset: DatasetRow) -> Source:
    """The dataset's columns plus the hidden `__row` (a tiebreak; callers keep it hidden)."""
    columns = [Column(c.name, QUERY_TYPES[c.type]) for c in dataset.columns]
    return Source(
        from_sql=qualified_name(dataset.id),
        columns=[*columns, Column(ROW_ID, ColumnType.INTEGER)],
        tiebreak=[ROW_ID],
    )


class DatasetRepository:
    """The catalogue: one row per dataset."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, name: str, *, lock: bool = False) -> DatasetRow | None:
        """With `lock`, the row stays locked for the transaction (see `busy`)."""
        async with busy(self.conn, lock):
            row = await self.conn.fetchrow(
                f"SELECT {_FIELDS} FROM dataset_catalogue WHERE name = $1"
                + (" FOR UPDATE" if lock else ""),
                name,
            )
        return None if row is None else msgspec.convert(dict(row), DatasetRow)

    async def get_by_id(self, dataset_id: int, *, lock: bool = False) -> DatasetRow | None:
        async with busy(self.conn, lock):
            row = await self.conn.fetchrow(
                f"SELECT {_FIELDS} FROM dataset_catalogue WHERE id = $1"
                + (" FOR UPDATE" if lock else ""),
                dataset_id,
            )
        return None if row is None else msgspec.convert(dict(row), DatasetRow)

    async def exists(self, name: str) -> bool:
        found = await self.conn.fetchval("SELECT 1 FROM dataset_catalogue WHERE name = $1", name)
        return found is not None

    async def next_id(self) -> int:
        """An id for a dataset whose catalogue row is inserted later (see `insert`)."""
        value: int = await self.conn.fetchval(
            "SELECT nextval(pg_get_serial_sequence('dataset_catalogue', 'id'))"
        )
        return value

    async def insert(
        self,
        dataset_id: int,
        meta: DatasetCreate,
        columns: Sequence[ColumnSpec],
        row_count: int,
        created_by: str,
    ) -> None:
        try:
            await self.conn.execute(
                """
                INSERT INTO dataset_catalogue (id, name, title, description, tags, source,
                                               columns, row_count, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                dataset_id,
                meta.name,
                meta.title,
                meta.description,
                meta.tags,
                meta.source,
                msgspec.to_builtins(list(columns)),
                row_count,
                created_by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"dataset '{meta.name}' already exists") from exc
        # From now on the table's rows show only where this catalogue row does (its tenant).
        await self.conn.execute("SELECT guard_dataset_table($1)", dataset_id)

    async def update_fields(self, dataset_id: int, fields: dict[str, Any]) -> None:
        if not fields:
            return
        assert set(fields) <= {"title", "description", "tags", "source"}, fields
        assignments = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=2))
        await self.conn.execute(
            f"UPDATE dataset_catalogue SET {assignments}, updated_at = now() WHERE id = $1",
            dataset_id,
            *fields.values(),
        )

    async def add_rows(self, dataset_id: int, delta: int) -> None:
        await self.conn.execute(
            "UPDATE dataset_catalogue SET row_count = row_count + $2, updated_at = now()"
            " WHERE id = $1",
            dataset_id,
            delta,
        )

    async def delete(self, dataset_id: int) -> None:
        await self.conn.execute("DELETE FROM dataset_catalogue WHERE id = $1", dataset_id)


@asynccontextmanager
async def busy(conn: Connection, waits: bool) -> AsyncIterator[None]:
    """Lock waits of the block end after `database.lock_timeout_ms` (set on every
    connection) with a 409 instead of running into the statement timeout: a dataset being
    appended to, dropped or read stays busy only as long as that takes."""
    if not waits:
        yield
        return
    try:
        yield
    except asyncpg.LockNotAvailableError:
        raise Conflict(
            "the dataset is busy (being changed, or read by an export or a job); retry"
        ) from None
