"""Datasets: JSON or streamed CSV in, JSON pages or streamed CSV out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import BadRequest, FieldError
from service.http import examples
from service.http.bodies import CsvBody
from service.http.csv import csv_meta, then, wants_csv
from service.http.operation import Operation, Param
from service.http.params import (
    LIST_PARAMS,
    WHERE,
    WHERE_BOOLEAN,
    multi_params,
    only,
    path_str,
    single,
)
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.http.streaming import BoundedStreamingResponse
from service.query import parse_query
from service.query.limits import INT64_MAX
from service.schemas.datasets import DatasetCreate, DatasetOut, Deleted, Inserted, RowsAppend
from service.schemas.metadata import MetadataPatch
from service.schemas.pages import DatasetPage, RowPage

_STR = {"type": "string"}
DATASET_NAME = Param(
    name="name", where="path", schema={**_STR, "example": "iris"}, description="Dataset name"
)
GROUPING = (
    Param(
        name="group_by",
        where="query",
        schema=_STR,
        description="Columns to group by",
        repeated=True,
    ),
    Param(
        name="aggregate",
        where="query",
        schema=_STR,
        description="Columns to aggregate (result `{column}_{func}`)",
        repeated=True,
    ),
    Param(
        name="aggregate_func",
        where="query",
        schema={"type": "string", "enum": ["count", "sum", "avg", "min", "max", "stddev"]},
        description="Function per `aggregate` column",
        repeated=True,
    ),
)
CSV_UPLOAD = (
    Param(
        name="name",
        where="query",
        schema=_STR,
        description="With a CSV body: the new dataset's name (required)",
    ),
    Param(name="title", where="query", schema=_STR, description="With a CSV body: title"),
    Param(
        name="description", where="query", schema=_STR, description="With a CSV body: description"
    ),
    Param(
        name="tags", where="query", schema=_STR, description="With a CSV body: tags", repeated=True
    ),
    Param(
        name="source",
        where="query",
        schema=_STR,
        description="With a CSV body: where the data comes from",
    ),
    Param(
        name="columns",
        where="query",
        schema=_STR,
        description="With a CSV body: `name:type` declares a column's type (integer, float, "
        "boolean, text, timestamp); other columns are inferred from the header and the first "
        "1000 rows",
        repeated=True,
    ),
)
_JSON_OR_CSV = ("application/json", "text/csv")
CSV_SAFE = Param(
    name="csv_safe",
    where="query",
    schema={"type": "boolean", "default": False},
    description="With `Accept: text/csv`: put `'` before any text cell (and header name) "
    "that starts with `=`, `+`, `-`, `@`, tab or carriage return, so a spreadsheet shows it "
    "instead of running it as a formula. Numbers are never changed.",
)


async def create_dataset(request: Request, body: DatasetCreate | CsvBody) -> Response:
    svc = services(request)
    who = principal_of(request).sub
    if isinstance(body, CsvBody):
        meta = csv_meta(multi_params(request), CSV_UPLOAD)
        dataset = await svc.datasets.create_csv(meta, body.chunks(), who)
    else:
        only(multi_params(request), (), "not accepted")
        dataset = await svc.datasets.create(body, who)
    return json_response(dataset, 201, {"Location": f"/datasets/{dataset.name}"})


async def list_datasets(request: Request) -> Response:
    query = parse_query(multi_params(request))
    return json_response(await services(request).datasets.list(query))


async def get_dataset(request: Request) -> Response:
    return json_response(await services(request).datasets.get(path_str(request, "name")))


async def update_dataset(request: Request, body: MetadataPatch) -> Response:
    return json_response(await services(request).datasets.patch(path_str(request, "name"), body))


async def delete_dataset(request: Request) -> Response:
    await services(request).datasets.delete(path_str(request, "name"))
    return Response(status_code=204)


async def query_dataset_rows(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    params = multi_params(request)
    formula_safe = _flag(params, CSV_SAFE.name)  # checked for JSON too: a typo is a 400
    if not wants_csv(request.headers.get("accept", "")):
        query = parse_query(params, allow_grouping=True, extra_allowed=(CSV_SAFE.name,))
        return json_response(await svc.datasets.rows(name, query))
    # CSV: every matching row unless `limit` says otherwise.
    query = parse_query(
        params,
        allow_grouping=True,
        default_limit=INT64_MAX,
        max_limit=INT64_MAX,
        extra_allowed=(CSV_SAFE.name,),
    )
    http = svc.settings.http
    # PostgreSQL's backstop comes well after the response's own cut (send_timeout).
    idle = 2 * http.send_timeout + 5
    chunks = svc.datasets.export_csv(name, query, formula_safe=formula_safe, idle_seconds=idle)
    first = await anext(chunks)  # unknown dataset or bad query: a problem, not a broken stream
    return BoundedStreamingResponse(
        then(first, chunks),
        send_timeout=http.send_timeout,
        deadline=http.export_timeout,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _flag(params: dict[str, list[str]], name: str) -> bool:
    raw = single(params, name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise BadRequest(f"'{name}' must be true or false", [FieldError(name, raw[:50])])


async def append_dataset_rows(request: Request, body: RowsAppend | CsvBody) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    only(multi_params(request), (), "not accepted")
    if isinstance(body, CsvBody):
        inserted = await svc.datasets.append_csv(name, body.chunks())
    else:
        inserted = await svc.datasets.append(name, body)
    return json_response(Inserted(inserted=inserted))


async def delete_dataset_rows(request: Request) -> Response:
    params = multi_params(request)
    only(params, (WHERE, WHERE_BOOLEAN), "only where here")
    query = parse_query(params)
    svc = services(request)
    deleted = await svc.datasets.delete_rows(
        path_str(request, "name"), query.where, query.where_boolean
    )
    return json_response(Deleted(deleted=deleted))


OPERATIONS = [
    Operation(
        operation_id="create_dataset",
        method="POST",
        path="/datasets",
        endpoint=create_dataset,
        scope="datasets:write",
        summary="Create a dataset from JSON records or a streamed CSV",
        tag="datasets",
        body=DatasetCreate,
        example=examples.CREATE_DATASET,
        response=DatasetOut,
        status=201,
        params=CSV_UPLOAD,
        body_media=_JSON_OR_CSV,
        errors=(409,),
        description="JSON: `{name, title?, description?, tags?, source?, columns?, data}`. "
        "CSV (`Content-Type: text/csv`, UTF-8, a header line): metadata as query parameters; "
        "the body streams into PostgreSQL. A value that does not fit its column is a 422 naming "
        "row and column, and nothing is stored.",
    ),
    Operation(
        operation_id="list_datasets",
        method="GET",
        path="/datasets",
        endpoint=list_datasets,
        scope="datasets:read",
        summary="List and search datasets",
        tag="datasets",
        response=DatasetPage,
        params=LIST_PARAMS,
    ),
    Operation(
        operation_id="get_dataset",
        method="GET",
        path="/datasets/{name}",
        endpoint=get_dataset,
        scope="datasets:read",
        summary="A dataset's metadata: columns with types, row count, …",
        tag="datasets",
        response=DatasetOut,
        params=(DATASET_NAME,),
        errors=(404,),
    ),
    Operation(
        operation_id="update_dataset",
        method="PATCH",
        path="/datasets/{name}",
        endpoint=update_dataset,
        scope="datasets:write",
        summary="Change a dataset's title, description, tags or source",
        tag="datasets",
        body=MetadataPatch,
        example=examples.CHANGE_METADATA,
        response=DatasetOut,
        params=(DATASET_NAME,),
        errors=(404,),
    ),
    Operation(
        operation_id="delete_dataset",
        method="DELETE",
        path="/datasets/{name}",
        endpoint=delete_dataset,
        scope="datasets:write",
        summary="Drop a dataset",
        tag="datasets",
        status=204,
        params=(DATASET_NAME,),
        errors=(404,),
    ),
    Operation(
        operation_id="query_dataset_rows",
        method="GET",
        path="/datasets/{name}/rows",
        endpoint=query_dataset_rows,
        scope="datasets:read",
        summary="Query a dataset's rows",
        tag="datasets",
        response=RowPage,
        params=(DATASET_NAME, *LIST_PARAMS, *GROUPING, CSV_SAFE),
        response_media=_JSON_OR_CSV,
        errors=(404,),
        description="The full query language, with grouping and aggregates. With `Accept: "
        "text/csv` the result streams as CSV (text quoted, null as an empty field), and "
        "`limit` defaults to every row and has no maximum; `csv_safe=true` neutralises "
        "spreadsheet formulas in text cells.",
    ),
    Operation(
        operation_id="append_dataset_rows",
        method="POST",
        path="/datasets/{name}/rows",
        endpoint=append_dataset_rows,
        scope="datasets:write",
        summary="Append rows (JSON records or CSV)",
        tag="datasets",
        body=RowsAppend,
        example=examples.APPEND_ROWS,
        response=Inserted,
        params=(DATASET_NAME,),
        body_media=_JSON_OR_CSV,
        errors=(404,),
        description="JSON `{data: [records]}` or a CSV whose header names existing columns; "
        "all rows or none are added.",
    ),
    Operation(
        operation_id="delete_dataset_rows",
        method="DELETE",
        path="/datasets/{name}/rows",
        endpoint=delete_dataset_rows,
        scope="datasets:write",
        summary="Delete the rows matching `where` (required)",
        tag="datasets",
        response=Deleted,
        params=(DATASET_NAME, WHERE, WHERE_BOOLEAN),
        errors=(404,),
    ),
]
