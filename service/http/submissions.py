"""Job-starting POSTs: their `Idempotency-Key` and their `202 Accepted` answer."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import BadRequest, FieldError
from service.domain.jobs import IdempotencyKey, Submitted
from service.http.bodies import raw_body
from service.http.responses import json_response

_KEY_MAX = 255


def idempotency_key(request: Request, who: str) -> IdempotencyKey | None:
    """The request's `Idempotency-Key`, bound to its caller, method, path and body bytes."""
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
    return IdempotencyKey.of(key, who, request.method, request.url.path, raw_body(request))


def accepted(submitted: Submitted) -> Response:
    headers = {"Location": f"/jobs/{submitted.job.id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(submitted.job, 202, headers)
