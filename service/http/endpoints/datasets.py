"""Dataset endpoints: JSON or streamed CSV in, JSON pages or streamed CSV out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from service.domain.errors import BadRequest, FieldError, InvalidInput
from service.http.bodies import check_declared_size, content_type, is_json, read_json
from service.http.params import multi_params, path_str, single
from service.http.problems import HttpProblem
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.query import parse_query
from service.query.limits import INT64_MAX
from service.schemas.datasets import (
    COLUMN_TYPES,
    DatasetCreate,
    DatasetPatch,
    Deleted,
    Inserted,
    RowsAppend,
)

CSV = "text/csv"
CSV_PARAMS = ("name", "title", "description", "tags", "source", "columns")
_SINGLE = ("name", "title", "description", "source")


async def create_dataset(request: Request) -> Response:
    svc = services(request)
    who = principal_of(request).sub
    if _is_csv(request):
        meta = csv_meta(multi_params(request))
        stream = limited_stream(request, svc.settings.http.max_body_bytes)
        dataset = await svc.datasets.create_csv(meta, stream, who)
    else:
        _no_params(request)
        body = await read_json(request, DatasetCreate, svc.settings.http.max_body_bytes)
        dataset = await svc.datasets.create(body, who)
    return json_response(dataset, 201, {"Location": f"/datasets/{dataset.name}"})


async def list_datasets(request: Request) -> Response:
    svc = services(request)
    return json_response(await svc.datasets.list(parse_query(multi_params(request))))


async def get_dataset(request: Request) -> Response:
    return json_response(await services(request).datasets.get(path_str(request, "name")))


async def patch_dataset(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, DatasetPatch, svc.settings.http.max_body_bytes)
    return json_response(await svc.datasets.patch(path_str(request, "name"), body))


async def delete_dataset(request: Request) -> Response:
    await services(request).datasets.delete(path_str(request, "name"))
    return Response(status_code=204)


async def query_rows(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    params = multi_params(request)
    if not wants_csv(request.headers.get("accept", "")):
        query = parse_query(params, allow_grouping=True)
        return json_response(await svc.datasets.rows(name, query))
    # CSV: every matching row unless `limit` says otherwise.
    query = parse_query(params, allow_grouping=True, default_limit=INT64_MAX, max_limit=INT64_MAX)
    chunks = svc.datasets.export_csv(name, query)
    first = await anext(chunks)  # unknown dataset or bad query: a problem, not a broken stream
    return StreamingResponse(
        _then(first, chunks),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


async def append_rows(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    _no_params(request)
    if _is_csv(request):
        stream = limited_stream(request, svc.settings.http.max_body_bytes)
        inserted = await svc.datasets.append_csv(name, stream)
    else:
        body = await read_json(request, RowsAppend, svc.settings.http.max_body_bytes)
        inserted = await svc.datasets.append(name, body)
    return json_response(Inserted(inserted=inserted))


async def delete_rows(request: Request) -> Response:
    params = multi_params(request)
    for key in params:
        if key not in ("where", "where_boolean"):
            raise BadRequest(
                f"unknown parameter '{key[:40]}'", [FieldError(key[:40], "only where here")]
            )
    query = parse_query(params)
    svc = services(request)
    deleted = await svc.datasets.delete_rows(
        path_str(request, "name"), query.where, query.where_boolean
    )
    return json_response(Deleted(deleted=deleted))


# -- CSV bodies -------------------------------------------------------------------------------


def csv_meta(params: dict[str, list[str]]) -> DatasetCreate:
    """The metadata of a CSV upload, from its query parameters (`columns=name:type`)."""
    for key in params:
        if key not in CSV_PARAMS:
            raise BadRequest(
                f"unknown parameter '{key[:40]}'",
                [FieldError(key[:40], f"expected one of {', '.join(CSV_PARAMS)}")],
            )
    raw: dict[str, Any] = {k: single(params, k) for k in _SINGLE if k in params}
    if "tags" in params:
        raw["tags"] = params["tags"]
    if "columns" in params:
        raw["columns"] = [_column_param(i, text) for i, text in enumerate(params["columns"])]
    if "name" not in raw:
        raise InvalidInput("name the dataset", [FieldError("name", "required with a CSV body")])
    try:
        return msgspec.convert(raw, DatasetCreate)
    except msgspec.ValidationError as exc:
        text, sep, where = str(exc).rpartition(" - at `$.")
        if not sep:
            text, where = str(exc), ""
        loc = where.rstrip("`").replace(".name", "") or "$"
        raise InvalidInput(f"invalid parameter {loc}: {text}", [FieldError(loc, text)]) from None


def _column_param(i: int, text: str) -> dict[str, str]:
    name, sep, type_ = text.rpartition(":")
    if not sep or type_ not in COLUMN_TYPES:
        raise InvalidInput(
            f"columns[{i}]: expected name:type, the type one of {', '.join(COLUMN_TYPES)}",
            [FieldError(f"columns[{i}]", f"expected name:type, got {text[:80]!r}")],
        )
    return {"name": name, "type": type_}


async def limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 as soon as it passes `limit` (or says it will)."""
    check_declared_size(request, limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, f"the body is larger than the limit of {limit} bytes")
        if chunk:
            yield chunk


def wants_csv(accept: str) -> bool:
    """True when `Accept` prefers text/csv to application/json (`*/*` means JSON)."""
    weights: dict[str, float] = {}
    for part in accept.lower().split(","):
        media, *options = (p.strip() for p in part.split(";"))
        q = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media] = max(q, weights.get(media, 0.0))
    csv_q = weights.get(CSV, 0.0)
    return csv_q > 0 and csv_q >= weights.get("application/json", 0.0)


def _is_csv(request: Request) -> bool:
    if content_type(request) != CSV:
        if is_json(request):
            return False
        raise HttpProblem(
            415,
            f"expected Content-Type application/json or text/csv, got "
            f"'{content_type(request) or 'nothing'}'",
        )
    charset = request.headers.get("content-type", "").lower().partition("charset=")[2]
    if charset.strip().strip('"') not in ("", "utf-8", "utf8"):
        raise HttpProblem(415, "CSV bodies must be UTF-8")
    return True


def _no_params(request: Request) -> None:
    for key in request.query_params:
        raise BadRequest(f"unknown parameter '{key[:40]}'", [FieldError(key[:40], "not accepted")])


async def _then(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:  # a client gone mid-stream: end the cursor's transaction now, not at collection
        await rest.aclose()
