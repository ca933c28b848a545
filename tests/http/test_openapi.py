"""The OpenAPI document: valid 3.1, one declaration per operation, readable in Swagger UI."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx2
import msgspec
import pytest
from openapi_spec_validator import validate

from service.estimators.model_type import OUTPUTS
from service.http.endpoints import OPERATIONS
from service.settings import Settings
from tests.factories import ClientFactory, json_of

pytestmark = pytest.mark.anyio


async def test_document_is_valid_openapi_31_and_covers_every_route(
    client: httpx2.AsyncClient,
) -> None:
    document = json_of(await client.get("/openapi.json"))
    validate(document)
    assert document["openapi"] == "3.1.0"
    for op in OPERATIONS:
        entry = document["paths"][op.path][op.method.lower()]
        assert str(op.status) in entry["responses"]
        if op.scope is None:
            assert entry["security"] == []
        else:
            assert entry["security"] == [{"bearer": list(op.scopes)}]
            assert "401" in entry["responses"] and "403" in entry["responses"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"


async def test_problem_schema_is_documented(client: httpx2.AsyncClient) -> None:
    document = json_of(await client.get("/openapi.json"))
    create = document["paths"]["/models"]["post"]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert "Problem" in document["components"]["schemas"]


async def test_operation_ids_are_the_declared_snake_case_names(
    client: httpx2.AsyncClient,
) -> None:
    document = json_of(await client.get("/openapi.json"))
    ids = {
        (method.upper(), path): entry["operationId"]
        for path, methods in document["paths"].items()
        for method, entry in methods.items()
    }
    assert ids == {(op.method, op.path): op.operation_id for op in OPERATIONS}
    assert len(set(ids.values())) == len(ids)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in ids.values())
    assert ids[("POST", "/models/{name}/predict")] == "predict"
    assert ids[("POST", "/models/{name}/train")] == "train_model"
    assert ids[("GET", "/openapi.json")] == "get_openapi"


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


async def test_schemas_have_readable_names_typed_enums_and_array_items(
    client: httpx2.AsyncClient,
) -> None:
    document = json_of(await client.get("/openapi.json"))
    names = set(document["components"]["schemas"])
    assert {"ModelPage", "JobPage", "VersionPage", "RowPage", "MetadataPatch"} <= names
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) for name in names), names
    for schema in _schemas(document):
        if "enum" in schema:
            assert schema.get("type") == "string", schema
            lowered = [str(v).lower() for v in schema["enum"]]
            assert len(lowered) == len(set(lowered)), schema  # one member per value
        if schema.get("type") == "array":
            assert "items" in schema, schema
    output = document["components"]["schemas"]["PredictRequest"]["properties"]["output"]
    assert {"type": "string", "enum": sorted(OUTPUTS)} in output["anyOf"]


async def test_job_filters_are_enums(client: httpx2.AsyncClient) -> None:
    document = json_of(await client.get("/openapi.json"))
    params = {p["name"]: p["schema"] for p in document["paths"]["/jobs"]["get"]["parameters"]}
    assert params["status"]["enum"] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert params["kind"]["enum"] == ["train", "update", "batch_predict"]
    assert params["model"] == {"type": "string"}


# Each example, in an order in which every one can succeed (the model it names exists, a job
# has finished before the next one starts).
EXAMPLES_IN_ORDER = [
    "create_dataset",
    "append_dataset_rows",
    "update_dataset",
    "create_model",
    "update_model",
    "train_model",
    "predict",
    "v2_infer",
    "update_model_data",
    "v2_infer_version",
    "put_alias",
    "put_traffic",
    "create_batch_prediction",
    "create_webhook",
]
STARTS_A_JOB = {"train_model", "update_model_data", "create_batch_prediction"}


async def test_every_body_example_works_as_sent(
    client_factory: ClientFactory, settings: Settings, run_worker: Callable[[], Awaitable[None]]
) -> None:
    """What Swagger UI pre-fills is a request that succeeds, not a 422.

    As on the laptop Swagger UI is mostly used from, receivers on this machine are allowed: the
    webhook example's URL is a local one, since a public name would not resolve offline."""
    webhooks = msgspec.structs.replace(settings.webhooks, allow_private=True)
    client = await client_factory(msgspec.structs.replace(settings, webhooks=webhooks))
    document = json_of(await client.get("/openapi.json"))
    with_body = {op.operation_id: op for op in OPERATIONS if op.body is not None}
    assert set(with_body) == set(EXAMPLES_IN_ORDER), "give every body an example, in order"
    for operation_id in EXAMPLES_IN_ORDER:
        op = with_body[operation_id]
        entry = document["paths"][op.path][op.method.lower()]
        example = entry["requestBody"]["content"]["application/json"]["example"]
        path = op.path.replace("{name}", "iris").replace("{alias}", "production")
        path = path.replace("{version}", "2")
        response = await client.request(op.method, path, json=example)
        assert 200 <= response.status_code < 300, (operation_id, response.text)
        if operation_id in STARTS_A_JOB:
            await run_worker()
            job = json_of(await client.get(response.headers["location"]))
            assert job["status"] == "succeeded", (operation_id, job)
