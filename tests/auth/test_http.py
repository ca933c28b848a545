"""Auth over HTTP: 401/403 problems and challenges, metrics, logs, OpenAPI, route scopes."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.auth.factory import build_authenticator
from service.auth.principal import SCOPES, Authenticator
from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.http.edge import Edge
from service.http.endpoints import OPERATIONS
from service.http.endpoints import operations as ops
from service.http.metrics import ApiMetrics
from service.http.openapi import build_openapi
from service.http.operation import Operation
from service.http.problems import exception_handlers
from service.http.routes import build_routes, principal_of
from service.http.state import Services
from service.logs import JsonFormatter
from service.schemas.training import TrainRequest
from service.settings import Settings
from tests.auth.idp import Clock, Idp, Key, mint
from tests.factories import ClientFactory, auth_settings, json_of, make_settings

pytestmark = pytest.mark.anyio

# The scope column of every route table in API.md, keyed by (method, path). Path parameter names
# are compared loosely (`{v}` and `{version}` are the same route).
API_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/model-types"): "models:read",
    ("GET", "/model-types/{type}"): "models:read",
    ("POST", "/models"): "models:write",
    ("GET", "/models"): "models:read",
    ("GET", "/models/{name}"): "models:read",
    ("PATCH", "/models/{name}"): "models:write",
    ("DELETE", "/models/{name}"): "models:write",
    ("POST", "/models/{name}/train"): "models:write",
    ("POST", "/models/{name}/update"): "models:write",
    ("POST", "/models/{name}/predict"): "models:predict",
    ("POST", "/models/{name}/batch-predictions"): "models:write",
    ("GET", "/models/{name}/status"): "models:read",
    ("POST", "/models/{name}/cancel"): "models:write",
    ("GET", "/models/{name}/versions"): "models:read",
    ("GET", "/models/{name}/versions/{v}"): "models:read",
    ("POST", "/models/{name}/versions/{v}/activate"): "models:write",
    ("GET", "/models/{name}/aliases"): "models:read",
    # Not in the table, which lists PUT and DELETE on one alias: reading one is `models:read`.
    ("GET", "/models/{name}/aliases/{alias}"): "models:read",
    ("PUT", "/models/{name}/aliases/{alias}"): "models:write",
    ("DELETE", "/models/{name}/aliases/{alias}"): "models:write",
    ("GET", "/models/{name}/traffic"): "models:read",
    ("PUT", "/models/{name}/traffic"): "models:write",
    ("DELETE", "/models/{name}/traffic"): "models:write",
    ("GET", "/jobs"): "models:read",
    ("GET", "/jobs/{id}"): "models:read",
    ("POST", "/jobs/{id}/cancel"): "models:write",
    # The Events section's paragraph on streams, not a table.
    ("GET", "/jobs/{id}/events"): "models:read",
    ("GET", "/events"): "models:read",
    ("POST", "/datasets"): "datasets:write",
    ("GET", "/datasets"): "datasets:read",
    ("GET", "/datasets/{name}"): "datasets:read",
    ("PATCH", "/datasets/{name}"): "datasets:write",
    ("DELETE", "/datasets/{name}"): "datasets:write",
    ("GET", "/datasets/{name}/rows"): "datasets:read",
    ("POST", "/datasets/{name}/rows"): "datasets:write",
    ("DELETE", "/datasets/{name}/rows"): "datasets:write",
    ("GET", "/audit"): "admin",
    ("POST", "/webhooks"): "models:write",
    ("GET", "/webhooks"): "models:read",
    ("GET", "/webhooks/{id}"): "models:read",
    ("DELETE", "/webhooks/{id}"): "models:write",
    ("GET", "/webhooks/{id}/deliveries"): "models:read",
    # The Open Inference Protocol paragraph.
    ("GET", "/v2/models/{name}"): "models:read",
    ("GET", "/v2/models/{name}/ready"): "models:predict",
    ("POST", "/v2/models/{name}/infer"): "models:predict",
    ("POST", "/v2/models/{name}/versions/{v}/infer"): "models:predict",
}
# The scopes API.md's paragraphs add to the table's: on every call, and when a body field is given.
API_FURTHER_SCOPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "/models/{name}/batch-predictions"): ("datasets:read", "datasets:write"),
}
API_BODY_SCOPES: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("POST", "/models/{name}/train"): {"dataset": ("datasets:read",)},
    ("POST", "/models/{name}/update"): {"dataset": ("datasets:read",)},
}
PUBLIC_PATHS = {
    "/livez",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/v2/health/live",
    "/v2/health/ready",
}


def _loose(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_requires_the_scope_api_md_gives_it() -> None:
    expected = {(method, _loose(path)): scope for (method, path), scope in API_SCOPES.items()}
    wrong = []
    for op in OPERATIONS:
        key = (op.method, _loose(op.path))
        if key in expected:
            if op.scope != expected[key]:
                wrong.append(
                    f"{op.method} {op.path}: scope {op.scope!r}, API.md says {expected[key]!r}"
                )
        elif not (op.scope is None and op.path in PUBLIC_PATHS):
            wrong.append(f"{op.method} {op.path}: not in API.md's tables (scope {op.scope!r})")
    assert not wrong, "\n".join(wrong)
    assert set(API_SCOPES.values()) <= set(SCOPES)


def test_every_route_requires_the_further_scopes_api_md_gives_it() -> None:
    further = {(m, _loose(p)): scopes for (m, p), scopes in API_FURTHER_SCOPES.items()}
    by_body = {(m, _loose(p)): scopes for (m, p), scopes in API_BODY_SCOPES.items()}
    found = {(op.method, _loose(op.path)): op for op in OPERATIONS}
    assert set(further) | set(by_body) <= set(found)
    for key, op in found.items():
        assert tuple(op.also_requires) == further.get(key, ()), key
        assert {f: tuple(s) for f, s in op.body_scopes.items()} == by_body.get(key, {}), key


def test_openapi_declares_the_bearer_scheme_and_per_operation_scopes() -> None:
    probe = Operation(
        operation_id="probe",
        method="POST",
        path="/probe",
        endpoint=ops.livez,
        scope="models:write",
        summary="probe",
        tag="probe",
    )
    doc = build_openapi([*OPERATIONS, probe], "models-service", "test")
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for op in [*OPERATIONS, probe]:
        entry = doc["paths"][op.path][op.method.lower()]
        if op.scope is None:
            assert entry["security"] == [], op.path
            assert "401" not in entry["responses"]
        else:
            assert entry["security"] == [{"bearer": [op.scope, *op.also_requires]}], op.path
            assert {"401", "403"} <= set(entry["responses"]), op.path
    for path in PUBLIC_PATHS:
        assert doc["paths"][path]["get"]["security"] == []
    batch = doc["paths"]["/models/{name}/batch-predictions"]["post"]
    assert batch["security"] == [{"bearer": ["models:write", "datasets:read", "datasets:write"]}]
    train = doc["paths"]["/models/{name}/train"]["post"]
    assert train["security"] == [{"bearer": ["models:write"]}]
    assert train["x-body-scopes"] == {"dataset": ["datasets:read"]}
    assert (
        "A `dataset` in the body also requires the scope `datasets:read`." in (train["description"])
    )


# --- end to end through the real dispatcher, problem renderer and middleware -------------------


async def whoami(request: Request) -> Response:
    logging.getLogger("tests.auth.endpoint").info("serving")
    return JSONResponse({"sub": principal_of(request).sub})


async def train_probe(request: Request, body: TrainRequest) -> Response:
    return JSONResponse({"sub": principal_of(request).sub, "dataset": body.dataset is not None})


def services_for(auth: Authenticator, metrics: ApiMetrics) -> Services:
    """A Services whose only live members are the ones the dispatcher uses (auth, metrics,
    settings for the body limit)."""
    required = {
        f.name: None
        for f in fields(Services)
        if f.default is MISSING and f.default_factory is MISSING
    }
    values: dict[str, Any] = {
        **required,
        "auth": auth,
        "metrics": metrics,
        "settings": make_settings(),
    }
    return Services(**values)


def scoped_app(auth: Authenticator, metrics: ApiMetrics) -> Starlette:
    operations = [
        Operation(
            operation_id="livez",
            method="GET",
            path="/livez",
            endpoint=ops.livez,
            scope=None,
            summary="Liveness",
            tag="operations",
        ),
        Operation(
            operation_id="whoami",
            method="GET",
            path="/whoami",
            endpoint=whoami,
            scope="models:read",
            summary="Who is calling",
            tag="test",
        ),
        Operation(
            operation_id="write",
            method="POST",
            path="/write",
            endpoint=whoami,
            scope="models:write",
            summary="Needs models:write",
            tag="test",
        ),
        Operation(
            operation_id="copy",
            method="POST",
            path="/copy",
            endpoint=whoami,
            scope="models:write",
            also_requires=("datasets:read", "datasets:write"),
            summary="Needs models:write, datasets:read and datasets:write",
            tag="test",
        ),
        Operation(
            operation_id="fit",
            method="POST",
            path="/fit",
            endpoint=train_probe,
            scope="models:write",
            body_scopes={"dataset": ("datasets:read",)},
            summary="Needs datasets:read too when the body names a dataset",
            tag="test",
            body=TrainRequest,
        ),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"services": services_for(auth, metrics)}
        await auth.close()

    return Starlette(
        routes=build_routes(operations),
        middleware=[
            Middleware(Edge, metrics=metrics, log_access=True),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )


@pytest.fixture
async def http(
    idp_client: httpx2.AsyncClient, clock: Clock
) -> AsyncIterator[tuple[httpx2.AsyncClient, ApiMetrics]]:
    metrics = ApiMetrics()
    app = scoped_app(build_authenticator(auth_settings(), idp_client, clock=clock), metrics)
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, metrics


def rejections(metrics: ApiMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("auth_rejections_total", {"reason": reason})
    return value or 0.0


async def test_public_route_needs_no_token(http: tuple[httpx2.AsyncClient, ApiMetrics]) -> None:
    client, _ = http
    assert (await client.get("/livez")).status_code == 200


@pytest.mark.parametrize(
    ("headers", "challenge", "reason"),
    [
        ({}, "Bearer", "missing"),
        ({"Authorization": "Basic YTpi"}, "Bearer", "malformed"),
        ({"Authorization": "Bearer not-a-jwt"}, 'Bearer error="invalid_token"', "malformed"),
    ],
)
async def test_no_or_bad_token_is_401_problem(
    http: tuple[httpx2.AsyncClient, ApiMetrics],
    headers: dict[str, str],
    challenge: str,
    reason: str,
) -> None:
    client, metrics = http
    response = await client.get("/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert response.headers["content-type"] == "application/problem+json"
    body = json_of(response)
    assert (body["type"], body["status"], body["instance"]) == (
        "/problems/unauthorized",
        401,
        "/whoami",
    )
    assert rejections(metrics, reason) == 1


async def test_expired_token_is_401_invalid_token(
    http: tuple[httpx2.AsyncClient, ApiMetrics], keys: dict[str, Key], clock: Clock
) -> None:
    client, metrics = http
    token = mint(keys["rsa1"], clock.now, exp=int(clock.now) - 5)
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert json_of(response)["detail"] == "the token has expired"
    assert rejections(metrics, "expired") == 1


async def test_id_token_is_401_invalid_token_counted_by_its_reason(
    http: tuple[httpx2.AsyncClient, ApiMetrics], keys: dict[str, Key], clock: Clock
) -> None:
    client, metrics = http
    token = mint(keys["rsa1"], clock.now, header={"typ": "JWT"}, scope="admin")
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert json_of(response)["detail"] == (
        "the token is not an access token: its `typ` header must be at+jwt"
    )
    assert rejections(metrics, "wrong_token_type") == 1


async def test_repeated_garbage_in_introspection_mode_is_one_idp_call_and_counted_each_time(
    idp: Idp, idp_client: httpx2.AsyncClient, clock: Clock
) -> None:
    metrics = ApiMetrics()
    settings = auth_settings(mode="introspection", jwks_url="")
    app = scoped_app(build_authenticator(settings, idp_client, clock=clock), metrics)
    async with LifespanManager(app) as manager:
        transport = httpx2.ASGITransport(app=manager.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(5):
                response = await client.get(
                    "/whoami", headers={"Authorization": "Bearer not-a-real-token"}
                )
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
                assert json_of(response)["detail"] == "the token is not active"
    assert idp.introspection_requests == 1
    assert rejections(metrics, "inactive") == 5


async def test_valid_token_without_the_scope_is_403(
    http: tuple[httpx2.AsyncClient, ApiMetrics], keys: dict[str, Key], clock: Clock
) -> None:
    client, metrics = http
    token = mint(keys["rsa1"], clock.now, scope="models:read models:predict")
    response = await client.post("/write", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="models:write"'
    )
    body = json_of(response)
    assert (body["type"], body["status"]) == ("/problems/forbidden", 403)
    assert "models:write" in body["detail"]
    assert rejections(metrics, "insufficient_scope") == 1


async def test_a_403_names_every_missing_scope_and_challenges_with_all_required(
    http: tuple[httpx2.AsyncClient, ApiMetrics], keys: dict[str, Key], clock: Clock
) -> None:
    client, metrics = http
    token = mint(keys["rsa1"], clock.now, scope="models:write datasets:write")
    response = await client.post("/copy", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="models:write datasets:read datasets:write"'
    )
    body = json_of(response)
    assert body["missing_scopes"] == ["datasets:read"]
    assert body["detail"] == "this operation requires the scope 'datasets:read'"
    token = mint(keys["rsa1"], clock.now, scope="models:write")
    response = await client.post("/copy", headers={"Authorization": f"Bearer {token}"})
    assert json_of(response)["missing_scopes"] == ["datasets:read", "datasets:write"]
    assert "'datasets:read' and 'datasets:write'" in json_of(response)["detail"]
    assert rejections(metrics, "insufficient_scope") == 2
    token = mint(keys["rsa1"], clock.now, scope="models:write datasets:read datasets:write")
    response = await client.post("/copy", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


async def test_a_body_field_that_reaches_another_resource_needs_its_scope(
    http: tuple[httpx2.AsyncClient, ApiMetrics], keys: dict[str, Key], clock: Clock
) -> None:
    client, metrics = http
    headers = {"Authorization": f"Bearer {mint(keys['rsa1'], clock.now, scope='models:write')}"}
    inline = await client.post("/fit", headers=headers, json={"data": [{"x": 1}]})
    assert json_of(inline) == {"sub": "alice", "dataset": False}
    from_dataset = await client.post("/fit", headers=headers, json={"dataset": {"name": "hr"}})
    assert from_dataset.status_code == 403
    assert from_dataset.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="models:write datasets:read"'
    )
    assert json_of(from_dataset)["missing_scopes"] == ["datasets:read"]
    assert rejections(metrics, "insufficient_scope") == 1
    # The body is decoded before its scopes are known: a malformed one is a 422, not a 403.
    malformed = await client.post("/fit", headers=headers, json={"dataset": 3})
    assert malformed.status_code == 422
    token = mint(keys["rsa1"], clock.now, scope="models:write datasets:read")
    allowed = await client.post(
        "/fit", headers={"Authorization": f"Bearer {token}"}, json={"dataset": {"name": "hr"}}
    )
    assert json_of(allowed) == {"sub": "alice", "dataset": True}


async def test_admin_token_passes_every_scope(
    http: tuple[httpx2.AsyncClient, ApiMetrics], keys: dict[str, Key], clock: Clock
) -> None:
    client, _ = http
    headers = {"Authorization": f"Bearer {mint(keys['ec1'], clock.now, scope='admin')}"}
    assert (await client.get("/whoami", headers=headers)).status_code == 200
    assert (await client.post("/write", headers=headers)).status_code == 200
    assert (await client.post("/copy", headers=headers)).status_code == 200
    fit = await client.post("/fit", headers=headers, json={"dataset": {"name": "hr"}})
    assert fit.status_code == 200


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("service.access", "tests.auth.endpoint")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield out
    for logger in loggers:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


async def test_token_subject_is_the_principal_and_is_logged(
    http: tuple[httpx2.AsyncClient, ApiMetrics],
    keys: dict[str, Key],
    clock: Clock,
    json_log: io.StringIO,
) -> None:
    client, _ = http
    token = mint(keys["rsa1"], clock.now, sub="user-42")
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert json_of(response) == {"sub": "user-42"}
    lines = [msgspec.json.decode(line) for line in json_log.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["serving", "request"]
    assert all(line["sub"] == "user-42" for line in lines)


# --- through create_app ------------------------------------------------------------------------


async def test_create_app_in_jwt_mode_with_the_dev_key(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    path, scope = "/models", API_SCOPES[("GET", "/models")]
    key_file = tmp_path / "dev-jwk.json"
    jwks = write_dev_jwks(key_file)
    auth = auth_settings(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        jwks_url="",
        jwks_file=str(jwks),
        dev_key_file=str(key_file),
    )
    client = await client_factory(msgspec.structs.replace(settings, auth=auth))
    assert (await client.get("/livez")).status_code == 200
    assert (await client.get(path)).status_code == 401
    token = mint_token(auth, "frank", ["datasets:read"], 60)
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    token = mint_token(auth, "frank", [scope], 60)
    response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    metrics = (await client.get("/metrics")).text
    assert 'auth_rejections_total{reason="missing"} 1.0' in metrics
    assert 'auth_rejections_total{reason="insufficient_scope"} 1.0' in metrics
