"""The dataset queries of jobs: the dataset a train, update or batch-prediction body names,
checked while the client waits, and compiled again by the worker when it reads the rows.

The same compiler serves `GET /datasets/{name}/rows`, so a query that lists rows trains on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from service.domain.errors import BadRequest, FieldError, InvalidInput
from service.query import Compiled, Query, compile_query, parse_query
from service.query.limits import INT64_MAX, bad, show
from service.repositories.database import Connection
from service.repositories.datasets import ROW_ID, DatasetRepository, DatasetRow, rows_source
from service.schemas.training import DatasetQuery, DatasetSelection


@dataclass(frozen=True)
class PlannedDataset:
    """A job's dataset, and the columns its query makes available (its `select`, else all)."""

    dataset: DatasetRow
    columns: list[str]

    def require(self, features: Sequence[str], target: str | None) -> None:
        """InvalidInput naming the features (`$.features`) or target the query cannot give."""
        available = set(self.columns)
        wanted = [(f"$.features[{i}]", f) for i, f in enumerate(features)]
        if target is not None:
            wanted.append(("$.target", target))
        missing = [(loc, name) for loc, name in wanted if name not in available]
        if not missing:
            return
        hint = " (add them to `select`)" if len(self.columns) < len(self.dataset.columns) else ""
        raise InvalidInput(
            f"the dataset query lacks column(s) {', '.join(repr(n) for _, n in missing)}{hint}",
            [
                FieldError(loc, f"dataset '{self.dataset.name}' gives no column {name!r}")
                for loc, name in missing
            ],
        )


async def plan_dataset(conn: Connection, query: DatasetSelection) -> PlannedDataset:
    """The dataset a job body names, checked; InvalidInput at `$.dataset.*` otherwise."""
    dataset = await DatasetRepository(conn).get(query.name)
    if dataset is None:
        raise InvalidInput(
            f"dataset '{query.name}' does not exist",
            [FieldError("$.dataset.name", "no dataset has this name")],
        )
    names = {c.name for c in dataset.columns}
    unknown = [
        FieldError(f"$.dataset.select[{i}]", f"dataset '{query.name}' has no column {c!r}")
        for i, c in enumerate(query.select)
        if c not in names
    ]
    if unknown:
        raise InvalidInput("the dataset query selects unknown columns", unknown)
    if isinstance(query, DatasetQuery) and (query.group_by or query.aggregate):
        # Its groups and aggregates, as the compiler names them.
        return PlannedDataset(dataset, compile_stored(query, dataset, None).columns)
    return PlannedDataset(dataset, list(query.select) or [c.name for c in dataset.columns])


def compile_stored(
    query: DatasetSelection, dataset: DatasetRow, read: Sequence[str] | None
) -> Compiled:
    """The job's query reading the columns `read` (None: its own `select`); InvalidInput at
    `$.dataset.*`."""
    try:
        return compile_rows(stored_query(query, read), dataset)
    except BadRequest as exc:
        errors = [
            FieldError(e.loc if e.loc.startswith("$") else f"$.dataset.{e.loc}", e.msg)
            for e in exc.errors
        ]
        raise InvalidInput(f"invalid dataset query: {exc.detail}", errors) from None


def stored_query(query: DatasetSelection, read: Sequence[str] | None) -> Query:
    """A job body's dataset query as a `Query`, parsed exactly as `GET /datasets/{name}/rows`
    parses its parameters (the body's fields are those parameters); `limit` None means all.

    With `read`, the query selects those columns; a grouped one selects those of its groups
    (its aggregate results are always there)."""
    given = msgspec.structs.asdict(query)
    del given["name"]
    if read is not None:
        del given["select"]
    params = {
        key: value if isinstance(value, list) else [str(value)]
        for key, value in given.items()
        if value is not None and value != []
    }
    parsed = parse_query(params, allow_grouping=True, default_limit=INT64_MAX, max_limit=INT64_MAX)
    if read is None:
        return parsed
    select = [name for name in read if name in parsed.group_by] if parsed.grouped else list(read)
    return msgspec.structs.replace(parsed, select=select)


def compile_rows(query: Query, dataset: DatasetRow) -> Compiled:
    """`query` over the dataset's table; the default select is every column (not `__row`)."""
    refuse_hidden(query)
    if not query.grouped and not query.select:
        query = msgspec.structs.replace(query, select=[c.name for c in dataset.columns])
    return compile_query(query, rows_source(dataset))


def refuse_hidden(query: Query) -> None:
    """`__row` is the service's own column: unknown to clients, whatever they write."""
    named = [(f"where[{i}]", c.column) for i, c in enumerate(query.where)]
    named += [(f"select[{i}]", n) for i, n in enumerate(query.select)]
    named += [(f"order_by[{i}]", n) for i, (n, _) in enumerate(query.order_by)]
    named += [(f"group_by[{i}]", n) for i, n in enumerate(query.group_by)]
    named += [(f"aggregate[{i}]", n) for i, (n, _) in enumerate(query.aggregates)]
    for loc, name in named:
        if name == ROW_ID or name.startswith("__"):
            raise bad(loc, f"unknown column {show(name)}")
