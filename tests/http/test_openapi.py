"""The OpenAPI document is valid OpenAPI 3.1, covers every route and documents the problems."""

from __future__ import annotations

import httpx2
import pytest
from openapi_spec_validator import validate

from service.http.table import OPERATIONS
from tests.factories import json_of

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
            assert entry["security"] == [{"bearer": [op.scope]}]
            assert "401" in entry["responses"] and "403" in entry["responses"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"


async def test_problem_schema_is_documented(client: httpx2.AsyncClient) -> None:
    document = json_of(await client.get("/openapi.json"))
    create = document["paths"]["/models"]["post"]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert "Problem" in document["components"]["schemas"]
