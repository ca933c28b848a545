"""Training, update, status, cancel, job and version endpoints."""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import BadRequest, FieldError
from service.domain.jobs import IdempotencyKey, Submitted
from service.http.bodies import decode_json, is_json, read_body
from service.http.params import multi_params, paging, path_int, path_str, path_uuid, single
from service.http.problems import HttpProblem
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.query import parse_query
from service.schemas.jobs import FitKind
from service.schemas.training import TrainRequest

T = TypeVar("T")

JOB_FILTERS = ("model", "status", "kind")
_KEY_MAX = 255


async def train(request: Request) -> Response:
    return await _submit(request, "train")


async def update(request: Request) -> Response:
    return await _submit(request, "update")


async def _submit(request: Request, kind: FitKind) -> Response:
    body, who, key = await read_submission(request, TrainRequest)
    name = path_str(request, "name")
    return accepted(await services(request).jobs.submit(name, kind, body, who, key))


async def read_submission(
    request: Request, body_type: type[T]
) -> tuple[T, str, IdempotencyKey | None]:
    """The body of a job-starting POST, its caller, and its `Idempotency-Key` (if any)."""
    if not is_json(request):
        raise HttpProblem(415, "expected Content-Type application/json")
    raw = await read_body(request, services(request).settings.http.max_body_bytes)
    body = decode_json(raw, body_type)
    who = principal_of(request).sub
    return body, who, _idempotency_key(request, who, raw)


def accepted(submitted: Submitted) -> Response:
    headers = {"Location": f"/jobs/{submitted.job.id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(submitted.job, 202, headers)


def _idempotency_key(request: Request, who: str, body: bytes) -> IdempotencyKey | None:
    keys = request.headers.getlist("idempotency-key")
    if not keys:
        return None
    if len(keys) > 1:  # which one the client meant is a guess: refuse rather than pick
        raise BadRequest(
            "Idempotency-Key may be given once",
            [FieldError("Idempotency-Key", "given more than once")],
        )
    key = keys[0]
    if not key or len(key) > _KEY_MAX or not key.isprintable():
        raise BadRequest(
            "invalid Idempotency-Key",
            [FieldError("Idempotency-Key", f"1 to {_KEY_MAX} printable characters")],
        )
    return IdempotencyKey.of(key, who, request.method, request.url.path, body)


async def model_status(request: Request) -> Response:
    return json_response(await services(request).jobs.status(path_str(request, "name")))


async def cancel_model_job(request: Request) -> Response:
    job = await services(request).jobs.cancel_active(path_str(request, "name"))
    return json_response(job, 202, {"Location": f"/jobs/{job.id}"})


async def list_jobs(request: Request) -> Response:
    params = multi_params(request)
    filters = {name: value for name in JOB_FILTERS if (value := single(params, name)) is not None}
    for name in JOB_FILTERS:
        params.pop(name, None)
    query = parse_query(params)
    return json_response(await services(request).jobs.list(query, filters))


async def get_job(request: Request) -> Response:
    job_id = path_uuid(request, "job_id", "job")
    return json_response(await services(request).jobs.get(job_id))


async def cancel_job(request: Request) -> Response:
    job_id = path_uuid(request, "job_id", "job")
    job = await services(request).jobs.cancel(job_id)
    return json_response(job, 202, {"Location": f"/jobs/{job.id}"})


async def list_versions(request: Request) -> Response:
    limit, offset = paging(multi_params(request))
    page = await services(request).versions.list(path_str(request, "name"), limit, offset)
    return json_response(page)


async def get_version(request: Request) -> Response:
    version = path_int(request, "version", "version")
    return json_response(await services(request).versions.get(path_str(request, "name"), version))


async def activate_version(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "name")
    await svc.versions.activate(name, path_int(request, "version", "version"))
    return json_response(await svc.models.get(name))
