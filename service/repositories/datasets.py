"""The dataset catalogue (`dataset_catalogue`) and the dataset tables (`datasets."d_<id>"`).

No client-supplied text is ever part of SQL here: a table is named from its catalogue id, column
names come from the catalogue (checked when the dataset was created) and are always quoted, and
every value is a bind parameter or travels through COPY.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from service.domain.errors import Conflict
from service.query import Column, ColumnType, Compiled, Source, quote_ident
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


class CopyRejected(Exception):
    """PostgreSQL refused a COPY: `line` (physical, 1-based) and `column` when it said so."""

    def __init__(self, line: int | None, column: str | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class DatasetTable:
    """The rows of one dataset: `datasets."d_<id>"`."""

    def __init__(self, conn: Connection, dataset_id: int) -> None:
        self.conn = conn
        self.name = table_name(dataset_id)
        self.sql = qualified_name(dataset_id)

    async def create(self, columns: Sequence[ColumnSpec]) -> None:
        defs = [f"{quote_ident(ROW_ID)} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"]
        defs += [f"{quote_ident(c.name)} {SQL_TYPES[c.type]}" for c in columns]
        await self.conn.execute(f"CREATE TABLE {self.sql} ({', '.join(defs)})")

    async def drop(self) -> None:
        """Waits at most `database.lock_timeout_ms` for readers (an export, a job) to finish."""
        async with busy(self.conn, True):
            await self.conn.execute(f"DROP TABLE IF EXISTS {self.sql}")

    async def copy_csv(
        self, columns: Sequence[ColumnSpec], source: AsyncIterable[bytes], *, header: bool = True
    ) -> int:
        """Streams CSV bytes (their first line is a header) into `columns`; rows copied.

        Quoted empty fields of non-text columns are null too (`FORCE_NULL`), as many tools
        quote every field. Naive timestamps are UTC. Raises CopyRejected on bad data.
        """
        names = [c.name for c in columns]
        non_text = [c.name for c in columns if c.type != "text"]
        await self.conn.execute(f"SET LOCAL statement_timeout = '{COPY_TIMEOUT}'")
        await self.conn.execute("SET LOCAL TimeZone = 'UTC'")
        try:
            status = await self.conn.copy_to_table(
                self.name,
                schema_name=SCHEMA,
                source=source,
                columns=names,
                format="csv",
                header=header,
                force_null=non_text or None,
            )
        except asyncpg.DataError as exc:
            raise _rejected(exc, self.name, names) from None
        return _count(status)

    async def copy_records(self, names: Sequence[str], records: Sequence[Sequence[Any]]) -> int:
        """Binary COPY of typed values (None is null); rows copied."""
        if not records:
            return 0
        try:
            status = await self.conn.copy_records_to_table(
                self.name, schema_name=SCHEMA, records=records, columns=list(names)
            )
        except asyncpg.DataError as exc:
            raise _rejected(exc, self.name, names) from None
        return _count(status)

    async def delete_where(self, condition: str, args: Sequence[object]) -> int:
        status = await self.conn.execute(f"DELETE FROM {self.sql} WHERE {condition}", *args)
        return _count(status)

    async def page(self, compiled: Compiled) -> tuple[list[list[Any]], int]:
        """One page of a compiled query (values by position) and the total count."""
        rows = await self.conn.fetch(compiled.sql, *compiled.args)
        total = await self.conn.fetchval(compiled.count_sql, *compiled.args)
        types = compiled.column_types
        return [
            [plain_value(v, t) for v, t in zip(r.values(), types, strict=True)] for r in rows
        ], int(total)

    @staticmethod
    async def count_of(conn: Connection, compiled: Compiled, seconds: float) -> int | None:
        """The query's row count, or None when PostgreSQL cannot tell within `seconds`."""
        try:
            total = await conn.fetchval(compiled.count_sql, *compiled.args, timeout=seconds)
        except TimeoutError:
            return None
        return int(total)

    async def chunks(
        self, compiled: Compiled, size: int
    ) -> AsyncGenerator[list[tuple[Any, ...]], None]:
        """The query's rows in chunks through a server-side cursor (needs a transaction)."""
        cursor = await self.conn.cursor(compiled.sql, *compiled.args)
        while rows := await cursor.fetch(size):
            yield [tuple(r.values()) for r in rows]

    async def csv_chunks(
        self, compiled: Compiled, size: int, *, formula_safe: bool = False
    ) -> AsyncIterator[bytes]:
        """The query's rows as CSV lines, formatted by PostgreSQL, through a cursor.

        Text is always quoted (so an empty string is `""`), null is an empty field, booleans
        are `true`/`false`, timestamps RFC 3339 in UTC. `formula_safe` puts `'` before text
        that a spreadsheet would run as a formula (`FORMULA_STARTS`); numbers are left alone,
        so -5 in an integer column stays -5.
        """
        aliases = [f"c{i}" for i in range(len(compiled.columns))]
        fields = [
            _csv_field(f"q.{a}", t, formula_safe)
            for a, t in zip(aliases, compiled.column_types, strict=True)
        ]
        line = " || ',' || ".join(fields)
        sql = f"SELECT {line} FROM ({compiled.sql}) AS q({', '.join(aliases)})"
        cursor = await self.conn.cursor(sql, *compiled.args)
        while rows := await cursor.fetch(size):
            yield ("\n".join([r[0] for r in rows]) + "\n").encode()


_CSV_FIELDS = {
    ColumnType.TEXT: (
        "CASE WHEN {x} IS NULL THEN '' ELSE '\"' || replace({x}, '\"', '\"\"') || '\"' END"
    ),
    ColumnType.INTEGER: "coalesce({x}::text, '')",
    ColumnType.FLOAT: "coalesce({x}::text, '')",
    ColumnType.BOOLEAN: "CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' ELSE '' END",
    ColumnType.TIMESTAMP: (
        "CASE WHEN NOT isfinite({x}) THEN {x}::text ELSE coalesce(to_char({x} AT TIME ZONE"
        " 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '') END"
    ),
}


# OWASP's CSV injection list: a cell starting with one of these is a formula to a spreadsheet
# (tab and carriage return too: some spreadsheets strip them before looking).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_TEST = "left({x}, 1) IN (" + ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS) + ")"
_SAFE_TEXT = _CSV_FIELDS[ColumnType.TEXT].replace(
    "ELSE '\"' ||", f"ELSE '\"' || CASE WHEN {_FORMULA_TEST} THEN '''' ELSE '' END ||"
)


def _csv_field(expr: str, type_: ColumnType, formula_safe: bool = False) -> str:
    text = _SAFE_TEXT if formula_safe else _CSV_FIELDS[ColumnType.TEXT]
    template = text if type_ is ColumnType.TEXT else _CSV_FIELDS.get(type_)
    if template is None:  # any other type is written as its text
        template = text.replace("{x}", "{x}::text")
    return template.replace("{x}", expr)


def plain_value(value: Any, type_: ColumnType) -> Any:
    """sum/avg/stddev come back as Decimal: JSON numbers of the column's type."""
    if isinstance(value, Decimal):
        return int(value) if type_ is ColumnType.INTEGER else float(value)
    return value


def _count(status: str) -> int:
    """The row count of a command tag such as `COPY 12` or `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1])


def _rejected(exc: asyncpg.PostgresError, table: str, names: Sequence[str]) -> CopyRejected:
    context = getattr(exc, "context", None) or ""
    match = re.match(rf"COPY {re.escape(table)}, line (\d+)(?:, column )?", context)
    if match is None:
        return CopyRejected(None, None, str(exc))
    rest = context[match.end() :] if match.group(0).endswith("column ") else ""
    column = next(
        (n for n in sorted(names, key=len, reverse=True) if rest.startswith(n + ":") or rest == n),
        None,
    )
    return CopyRejected(int(match.group(1)), column, str(exc))
