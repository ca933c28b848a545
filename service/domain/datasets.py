"""Use cases of datasets: create from records or a streamed CSV, append, query, export, delete
rows, change metadata, drop. (The dataset queries of jobs are in `dataset_queries.py`.)

Every write is one transaction: a dataset's table, its rows and its catalogue row appear
together or not at all, and an append adds all its rows (and the row count) or none. A CSV body
is received in full (spooled, see `spool.py`) before that transaction opens, its header checked
first, so a client that stalls mid-upload never holds a connection or a lock. The
catalogue row of a new dataset is inserted last, so a long upload does not hold its name: of
two concurrent uploads of one name, the second to finish gets a 409 and stores nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import msgspec

from service.domain.csv_stream import CsvHead, LineTracker, header_error, read_head
from service.domain.dataset_columns import check_names, infer, json_kind, text_kind, to_rows
from service.domain.dataset_queries import compile_rows, refuse_hidden
from service.domain.errors import BadRequest, Conflict, FieldError, InvalidInput, NotFound
from service.domain.spool import spooled
from service.estimators.paths import item, member
from service.query import Condition, Query, compile_where
from service.query.limits import show
from service.repositories.database import Connection, Database
from service.repositories.dataset_tables import FORMULA_STARTS, CopyRejected, DatasetTable
from service.repositories.datasets import CATALOGUE, DatasetRepository, DatasetRow, rows_source
from service.repositories.listing import list_page
from service.schemas.base import NAME_PATTERN, Page
from service.schemas.datasets import ColumnSpec, DatasetCreate, DatasetOut, RowsAppend
from service.schemas.metadata import MetadataPatch

EXPORT_CHUNK_ROWS = 5_000
NAME = re.compile(NAME_PATTERN)


class Datasets:
    def __init__(self, db: Database, spool_dir: str = "") -> None:
        self.db = db
        self.spool_dir = spool_dir

    # -- creating and appending ---------------------------------------------------------------

    async def create(self, body: DatasetCreate, created_by: str) -> DatasetOut:
        columns = _record_columns(body)
        rows = to_rows(body.data, columns, known_only=False)
        async with self.db.transaction() as conn:
            repo = DatasetRepository(conn)
            if await repo.exists(body.name):
                raise _taken(body.name)
            dataset_id = await repo.next_id()
            table = DatasetTable(conn, dataset_id)
            await table.create(columns)
            copied = await _copy_rows(table, columns, rows)
            await repo.insert(dataset_id, body, columns, copied, created_by)
            return await _out_by_id(conn, dataset_id)

    async def create_csv(
        self, meta: DatasetCreate, stream: AsyncIterator[bytes], created_by: str
    ) -> DatasetOut:
        """`meta` carries no data; its `columns` declare types of some columns."""
        async with self.db.connection() as conn:  # refuse a taken name before reading the body
            if await DatasetRepository(conn).exists(meta.name):
                raise _taken(meta.name)
        check_names([c.name for c in meta.columns or []], lambda i: f"columns[{i}]")
        head = await read_head(stream)
        check_names(head.header, lambda i: f"$.header[{i}]")
        declared = {c.name: c.type for c in meta.columns or []}
        in_csv = infer(head.header, head.sample, text_kind, declared)
        extra = [c for c in meta.columns or [] if c.name not in set(head.header)]
        async with spooled(stream, self.spool_dir) as rest, self.db.transaction() as conn:
            repo = DatasetRepository(conn)
            dataset_id = await repo.next_id()
            table = DatasetTable(conn, dataset_id)
            await table.create([*in_csv, *extra])
            copied = await _copy_csv(table, in_csv, head, rest.chunks())
            await repo.insert(dataset_id, meta, [*in_csv, *extra], copied, created_by)
            return await _out_by_id(conn, dataset_id)

    async def append(self, name: str, body: RowsAppend) -> int:
        dataset = await self._get(name)
        rows = to_rows(body.data, dataset.columns, known_only=True)
        async with self.db.transaction() as conn:
            await _lock(conn, dataset)
            copied = await _copy_rows(DatasetTable(conn, dataset.id), dataset.columns, rows)
            await DatasetRepository(conn).add_rows(dataset.id, copied)
        return copied

    async def append_csv(self, name: str, stream: AsyncIterator[bytes]) -> int:
        """CSV rows whose header names existing columns (any subset, any order)."""
        dataset = await self._get(name)
        head = await read_head(stream)
        by_name = {c.name: c for c in dataset.columns}
        seen: set[str] = set()
        for i, column in enumerate(head.header):
            if column not in by_name:
                raise header_error(i, f"{show(column)} is not a column of dataset '{name}'")
            if column in seen:
                raise header_error(i, f"{show(column)} appears twice")
            seen.add(column)
        async with spooled(stream, self.spool_dir) as rest, self.db.transaction() as conn:
            await _lock(conn, dataset)
            columns = [by_name[c] for c in head.header]
            copied = await _copy_csv(DatasetTable(conn, dataset.id), columns, head, rest.chunks())
            await DatasetRepository(conn).add_rows(dataset.id, copied)
        return copied

    # -- reading ------------------------------------------------------------------------------

    async def get(self, name: str) -> DatasetOut:
        return _out(await self._get(name))

    async def list(self, query: Query) -> Page[dict[str, Any]]:
        return await list_page(self.db, query, CATALOGUE)

    async def rows(self, name: str, query: Query) -> Page[dict[str, Any]]:
        async with self.db.snapshot() as conn:
            dataset = await _load(conn, name)
            compiled = compile_rows(query, dataset)
            rows, total = await DatasetTable(conn, dataset.id).page(compiled)
        items = [dict(zip(compiled.columns, row, strict=True)) for row in rows]
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def export_csv(
        self,
        name: str,
        query: Query,
        *,
        formula_safe: bool = False,
        idle_seconds: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The header line, then chunks of CSV lines, read through a cursor in one snapshot.

        Problems with the request (unknown dataset, bad query) are raised before the header is
        produced, so a caller that awaits the first chunk can still answer with an error.
        `formula_safe` neutralises spreadsheet formulas in the header and in text cells.
        `idle_seconds`: PostgreSQL ends the transaction when the caller leaves it waiting that
        long between two chunks (a backstop: the HTTP layer cuts a slow reader before)."""
        async with self.db.snapshot() as conn:
            dataset = await _load(conn, name)
            compiled = compile_rows(query, dataset)
            header = compiled.columns
            if formula_safe:
                header = [f"'{c}" if c.startswith(FORMULA_STARTS) else c for c in header]
            yield csv_line(header)
            table = DatasetTable(conn, dataset.id)
            async for chunk in table.csv_chunks(
                compiled, EXPORT_CHUNK_ROWS, formula_safe=formula_safe, idle_seconds=idle_seconds
            ):
                yield chunk

    async def _get(self, name: str) -> DatasetRow:
        async with self.db.connection() as conn:
            return await _load(conn, name)

    # -- changing -----------------------------------------------------------------------------

    async def patch(self, name: str, patch: MetadataPatch) -> DatasetOut:
        fields = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        async with self.db.transaction() as conn:
            dataset = await _load(conn, name, lock=True)
            await DatasetRepository(conn).update_fields(dataset.id, fields)
            return await _out_by_id(conn, dataset.id)

    async def delete(self, name: str) -> None:
        async with self.db.transaction() as conn:
            dataset = await _load(conn, name, lock=True)
            await DatasetTable(conn, dataset.id).drop()
            await DatasetRepository(conn).delete(dataset.id)

    async def delete_rows(self, name: str, where: Sequence[Condition], where_boolean: str) -> int:
        if not where:
            raise BadRequest(
                "deleting rows needs a `where` (drop the dataset to delete everything)",
                [FieldError("where", "required")],
            )
        refuse_hidden(Query(where=list(where)))
        async with self.db.transaction() as conn:
            dataset = await _load(conn, name, lock=True)
            condition, args = compile_where(where, where_boolean, rows_source(dataset))
            deleted = await DatasetTable(conn, dataset.id).delete_where(condition, args)
            await DatasetRepository(conn).add_rows(dataset.id, -deleted)
        return deleted


def csv_line(fields: Sequence[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode()


# -- helpers ----------------------------------------------------------------------------------


def _record_columns(body: DatasetCreate) -> list[ColumnSpec]:
    """Declared columns first, then the records' other keys in order of first appearance."""
    declared = body.columns or []
    check_names([c.name for c in declared], lambda i: f"$.columns[{i}].name")
    names = [c.name for c in declared]
    first_seen: dict[str, int] = dict.fromkeys(names, -1)
    for i, record in enumerate(body.data):
        for key in record:
            if key not in first_seen:
                first_seen[key] = i
                names.append(key)
    extra = names[len(declared) :]
    check_names(extra, lambda i: member(item("$.data", first_seen[extra[i]]), extra[i]))
    if not names:
        raise InvalidInput(
            "a dataset needs at least one column",
            [FieldError("$.data", "no rows and no `columns`")],
        )
    rows = ([record.get(n) for n in names] for record in body.data)
    return infer(names, rows, json_kind, {c.name: c.type for c in declared})


async def _copy_rows(
    table: DatasetTable, columns: Sequence[ColumnSpec], rows: Sequence[tuple[Any, ...]]
) -> int:
    try:
        return await table.copy_records([c.name for c in columns], rows)
    except CopyRejected as exc:  # values were checked: only what PostgreSQL alone refuses
        row = (exc.line or 1) - 1
        loc = item("$.data", row) if exc.column is None else member(item("$.data", row), exc.column)
        raise InvalidInput(f"row {row}: {exc.message}", [FieldError(loc, exc.message)]) from None


async def _copy_csv(
    table: DatasetTable, columns: Sequence[ColumnSpec], head: CsvHead, rest: AsyncIterator[bytes]
) -> int:
    tracker = LineTracker(head.eol)
    try:
        copied = await table.copy_csv(columns, tracker.watch(head.consumed, rest))
    except CopyRejected as exc:
        raise _csv_error(exc, tracker) from None
    if copied != tracker.records() - 1:
        # PostgreSQL stops at a line holding only \. ; the rows after it would be lost.
        msg = (
            f"the CSV has {tracker.records() - 1} rows but the data ended after {copied}: a line"
            ' holding only \\. marks the end of COPY data; quote that value ("\\.")'
        )
        raise InvalidInput(msg, [FieldError(item("$.data", copied), msg)])
    return copied


def _csv_error(exc: CopyRejected, tracker: LineTracker) -> InvalidInput:
    if exc.line is None:
        return InvalidInput(f"the CSV was rejected: {exc.message}", [FieldError("$.data", "")])
    row = tracker.row_of_line(exc.line)
    if row is None or row < 1:
        where, loc = f"line {exc.line}", "$.data"
    else:
        where, loc = f"row {row} (line {exc.line})", item("$.data", row - 1)
    if exc.column is not None:
        where, loc = f"{where}, column {exc.column!r}", member(loc, exc.column)
    msg = f"{where}: {exc.message}"
    return InvalidInput(f"{msg}; nothing was stored", [FieldError(loc, msg)])


async def _load(conn: Connection, name: str, *, lock: bool = False) -> DatasetRow:
    # A name that could not have been created is unknown; it never reaches PostgreSQL (a NUL
    # in a path segment would be a 500 there).
    dataset = await DatasetRepository(conn).get(name, lock=lock) if NAME.fullmatch(name) else None
    if dataset is None:
        raise NotFound(f"dataset '{name}' does not exist")
    return dataset


async def _lock(conn: Connection, dataset: DatasetRow) -> None:
    if await DatasetRepository(conn).get_by_id(dataset.id, lock=True) is None:
        raise NotFound(f"dataset '{dataset.name}' does not exist")


async def _out_by_id(conn: Connection, dataset_id: int) -> DatasetOut:
    dataset = await DatasetRepository(conn).get_by_id(dataset_id)
    assert dataset is not None
    return _out(dataset)


def _out(dataset: DatasetRow) -> DatasetOut:
    fields = msgspec.structs.asdict(dataset)
    del fields["id"]
    fields["rows"] = fields.pop("row_count")
    return DatasetOut(**fields)


def _taken(name: str) -> Conflict:
    return Conflict(f"dataset '{name}' already exists")
