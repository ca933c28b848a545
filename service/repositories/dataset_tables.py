"""The rows of each dataset: one typed table per dataset, `datasets."d_<id>"`.

No client-supplied text is ever part of SQL here: a table is named from its catalogue id, column
names come from the catalogue (checked when the dataset was created) and are always quoted, and
every value is a bind parameter or travels through COPY.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg

from service.query import ColumnType, Compiled, quote_ident
from service.repositories.database import Connection
from service.repositories.datasets import (
    COPY_TIMEOUT,
    ROW_ID,
    SCHEMA,
    SQL_TYPES,
    busy,
    qualified_name,
    table_name,
)
from service.schemas.datasets import ColumnSpec


class CopyRejected(Exception):
    """PostgreSQL refused a COPY: `line` (physical, 1-based) and `column` when it said so."""

    def __init__(self, line: int | None, column: str | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class DatasetTable:
    """The rows of one dataset: `datasets."d_<id>"`.

    A table is filled by COPY while it is new (until `DatasetRepository.insert` guards it with
    its catalogue row's policy and hands it to the `models_datasets` role, in the same
    transaction). PostgreSQL refuses COPY into a table under row-level security, so later
    appends COPY into a temporary twin and move the rows with one INSERT, which the policy
    checks.
    """

    def __init__(self, conn: Connection, dataset_id: int) -> None:
        self.conn = conn
        self.dataset_id = dataset_id
        self.name = table_name(dataset_id)
        self.sql = qualified_name(dataset_id)
        self._new = False

    async def create(self, columns: Sequence[ColumnSpec]) -> None:
        defs = [f"{quote_ident(ROW_ID)} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"]
        defs += [f"{quote_ident(c.name)} {SQL_TYPES[c.type]}" for c in columns]
        await self.conn.execute(f"CREATE TABLE {self.sql} ({', '.join(defs)})")
        self._new = True

    @asynccontextmanager
    async def _copy_target(self, names: Sequence[str]) -> AsyncIterator[str]:
        """The schema to COPY `names` into: this table's own while it is new, else a
        temporary table of the same name whose rows are then appended here."""
        if self._new:
            yield SCHEMA
            return
        twin = f"pg_temp.{quote_ident(self.name)}"
        await self.conn.execute(
            f"CREATE TEMPORARY TABLE {quote_ident(self.name)} ON COMMIT DROP"
            f" AS SELECT * FROM {self.sql} WITH NO DATA"
        )
        yield "pg_temp"
        listed = ", ".join(quote_ident(n) for n in names)
        await self.conn.execute(f"INSERT INTO {self.sql} ({listed}) SELECT {listed} FROM {twin}")
        await self.conn.execute(f"DROP TABLE {twin}")

    async def drop(self) -> None:
        """Waits at most `database.lock_timeout_ms` for readers (an export, a job) to finish."""
        async with busy(self.conn, True):
            # Through the database's function: the service does not own guarded tables.
            await self.conn.execute("SELECT drop_dataset_table($1)", self.dataset_id)

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
            async with self._copy_target(names) as schema:
                status = await self.conn.copy_to_table(
                    self.name,
                    schema_name=schema,
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
            async with self._copy_target(names) as schema:
                status = await self.conn.copy_records_to_table(
                    self.name, schema_name=schema, records=records, columns=list(names)
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
        self,
        compiled: Compiled,
        size: int,
        *,
        formula_safe: bool = False,
        idle_seconds: float | None = None,
    ) -> AsyncIterator[bytes]:
        """The query's rows as CSV lines, formatted by PostgreSQL, through a cursor.

        Text is always quoted (so an empty string is `""`), null is an empty field, booleans
        are `true`/`false`, timestamps RFC 3339 in UTC. `formula_safe` puts `'` before text
        that a spreadsheet would run as a formula (`FORMULA_STARTS`); numbers are left alone,
        so -5 in an integer column stays -5. `idle_seconds` ends the session (PostgreSQL's
        `idle_in_transaction_session_timeout`) when no fetch comes for that long.
        """
        aliases = [f"c{i}" for i in range(len(compiled.columns))]
        fields = [
            _csv_field(f"q.{a}", t, formula_safe)
            for a, t in zip(aliases, compiled.column_types, strict=True)
        ]
        line = " || ',' || ".join(fields)
        sql = f"SELECT {line} FROM ({compiled.sql}) AS q({', '.join(aliases)})"
        if idle_seconds is not None:
            # PostgreSQL's own bound on the time the reader may keep the transaction waiting
            # between two fetches, should the api never come back to it.
            ms = max(1, round(idle_seconds * 1000))
            await self.conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {ms}")
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
