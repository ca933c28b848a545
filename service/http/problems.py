"""The one place where errors become HTTP: RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from service.artifacts.signing import TamperedArtifact
from service.auth.errors import AuthError, InsufficientScope
from service.domain import errors as domain
from service.domain.limits import OverLimit, TooBusy, TooLarge
from service.domain.preconditions import PreconditionFailed
from service.logs import request_id
from service.serving.predictor import Overloaded, PredictionTimeout

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
OPEN_INFERENCE_PREFIX = "/v2/"  # routes that answer errors in that protocol's shape
_encoder = msgspec.json.Encoder()


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    request_id: str = ""
    errors: list[domain.FieldError] = msgspec.field(default_factory=list)
    missing_scopes: list[str] = msgspec.field(default_factory=list)  # what a 403 lacks


class HttpProblem(Exception):
    """A transport-level failure (body too large, wrong content type) raised by `http/` code."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
    504: "timeout",
}

_DOMAIN_STATUS: dict[type[BaseException], int] = {
    domain.DomainError: 400,
    domain.BadRequest: 400,
    domain.NotFound: 404,
    domain.Conflict: 409,
    PreconditionFailed: 412,
    domain.InvalidInput: 422,
    domain.Unavailable: 503,
    domain.QueryTimeout: 504,
    TooBusy: 429,
    TooLarge: 413,
}


def domain_status(exc: domain.DomainError) -> int:
    """The status of the nearest mapped class in the error's hierarchy: a new subclass gets
    its parent's status; `DomainError` itself, and a direct subclass of it, a 400."""
    return next(_DOMAIN_STATUS[cls] for cls in type(exc).__mro__ if cls in _DOMAIN_STATUS)


def problem(
    request: Request,
    status: int,
    detail: str = "",
    errors: Sequence[domain.FieldError] = (),
    headers: Mapping[str, str] | None = None,
    missing_scopes: Sequence[str] = (),
) -> Response:
    if request.url.path.startswith(OPEN_INFERENCE_PREFIX):
        return _inference_error(status, detail, errors, headers)
    body = Problem(
        type=f"/problems/{_SLUGS.get(status, str(status))}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id.get() or "",
        errors=list(errors),
        missing_scopes=list(missing_scopes),
    )
    return Response(_encoder.encode(body), status, headers=headers, media_type=PROBLEM_JSON)


def _inference_error(
    status: int,
    detail: str,
    errors: Sequence[domain.FieldError],
    headers: Mapping[str, str] | None,
) -> Response:
    """The Open Inference Protocol's error shape, `{"error": "..."}`. Its clients expect a 400
    for a request they got wrong, where our own routes answer 422."""
    located = "; ".join(f"{e.loc}: {e.msg}" for e in errors)
    text = f"{detail}: {located}" if located else detail
    status = 400 if status == 422 else status
    return Response(_encoder.encode({"error": text}), status, headers, "application/json")


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, domain.DomainError)
    status = domain_status(exc)
    headers = {}
    if isinstance(exc, domain.Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
        log.warning("dependency unavailable", extra={"dependency": exc.dependency})
        svc = getattr(request.state, "services", None)
        if svc is not None:
            svc.metrics.dependency_errors.labels(exc.dependency).inc()
    if isinstance(exc, OverLimit):
        if isinstance(exc, TooBusy):
            headers["Retry-After"] = str(exc.retry_after)
        svc = getattr(request.state, "services", None)
        if svc is not None:
            svc.metrics.limit_refusals.labels(exc.limit).inc()
    return problem(request, status, exc.detail, exc.errors, headers)


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    if isinstance(exc, InsufficientScope):
        challenge = f'Bearer error="insufficient_scope", scope="{exc.scope}"'
        headers = {"WWW-Authenticate": challenge}
        return problem(request, 403, exc.detail, headers=headers, missing_scopes=exc.missing)
    challenge = 'Bearer error="invalid_token"' if exc.token_present else "Bearer"
    return problem(request, 401, exc.detail, headers={"WWW-Authenticate": challenge})


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    return problem(request, exc.status, exc.detail, headers=exc.headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: f"no route for {request.url.path}", 405: f"{request.method} is not allowed here"}
    return problem(
        request, exc.status_code, detail.get(exc.status_code, exc.detail), headers=exc.headers
    )


async def _overloaded(request: Request, exc: Exception) -> Response:
    return problem(
        request,
        503,
        "too many predictions are waiting; retry shortly",
        headers={"Retry-After": "1"},
    )


async def _prediction_timeout(request: Request, exc: Exception) -> Response:
    return problem(request, 504, "the prediction took longer than the configured timeout")


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody will read this answer: the client disconnected, or stalled past
    # `http.read_timeout`, mid-body. Not a bug, so no traceback.
    log.info("the client went away before sending its whole body")
    return problem(request, 400, "the request body ended early: the client went away")


async def _tampered(request: Request, exc: Exception) -> Response:
    svc = getattr(request.state, "services", None)
    if svc is not None:
        svc.metrics.artifact_rejections.inc()
    return problem(request, 500, "the stored model artifact failed verification and was not loaded")


def exception_handlers() -> dict[type[Exception] | int, ExceptionHandler]:
    return {
        domain.DomainError: _domain_error,
        AuthError: _auth_error,
        HttpProblem: _http_problem,
        HTTPException: _http_exception,
        Overloaded: _overloaded,
        PredictionTimeout: _prediction_timeout,
        TamperedArtifact: _tampered,
        ClientDisconnect: _client_gone,
    }
