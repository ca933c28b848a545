"""An operation's declaration and its endpoint cannot disagree: a mismatch fails at import."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import Response

from service.http.bodies import CsvBody
from service.http.endpoints.datasets import GROUPING
from service.http.operation import Operation, Param
from service.http.params import LIST_PARAMS
from service.http.routes import build_routes
from service.query.parse import GROUPING_PARAMS, QUERY_PARAMS
from service.schemas.models import ModelCreate
from service.schemas.predictions import PredictRequest
from service.schemas.training import DatasetQuery, TrainRequest
from tests.factories import json_of

pytestmark = pytest.mark.anyio


async def no_body(request: Request) -> Response:
    return Response()


async def takes_model(request: Request, body: ModelCreate) -> Response:
    return Response()


async def takes_model_or_csv(request: Request, body: ModelCreate | CsvBody) -> Response:
    return Response()


def declare(**overrides: Any) -> Operation:
    fields: dict[str, Any] = {
        "operation_id": "probe",
        "method": "POST",
        "path": "/probe",
        "endpoint": no_body,
        "scope": None,
        "summary": "probe",
        "tag": "test",
        **overrides,
    }
    return Operation(**fields)


def test_an_endpoint_must_take_the_declared_body() -> None:
    declare(endpoint=takes_model, body=ModelCreate)
    declare(endpoint=takes_model_or_csv, body=ModelCreate, body_media=("text/csv",))
    with pytest.raises(TypeError, match="PredictRequest"):
        declare(endpoint=takes_model, body=PredictRequest)
    with pytest.raises(TypeError, match="takes \\(request, body\\)"):
        declare(endpoint=no_body, body=ModelCreate)
    with pytest.raises(TypeError, match="takes \\(request\\) only"):
        declare(endpoint=takes_model)
    with pytest.raises(TypeError, match="declares"):
        declare(endpoint=takes_model, body=ModelCreate, body_media=("text/csv",))


def test_an_example_must_be_a_body_and_ids_snake_case_and_unique() -> None:
    with pytest.raises(TypeError, match="example"):
        declare(endpoint=takes_model, body=ModelCreate, example=PredictRequest())
    with pytest.raises(ValueError, match="snake_case"):
        declare(operation_id="postProbe")
    with pytest.raises(ValueError, match="declared twice"):
        build_routes([declare(), declare(path="/other")])


async def test_the_dispatcher_hands_the_endpoint_the_decoded_body(
    client: httpx2.AsyncClient,
) -> None:
    bad = await client.post("/models", json={"name": "iris", "model_type": 3})
    assert bad.status_code == 422
    assert json_of(bad)["errors"] == [{"loc": "$.model_type", "msg": "Expected `str`, got `int`"}]
    wrong_type = await client.post("/models", content=b"name=iris")
    assert wrong_type.status_code == 415
    good = await client.post(
        "/models", json={"name": "iris", "model_type": "sklearn.linear_model.LogisticRegression"}
    )
    assert good.status_code == 201 and json_of(good)["name"] == "iris"


def test_path_parameters_are_declared_exactly() -> None:
    name = Param(name="name", where="path", schema={"type": "string"})
    declare(path="/probe/{name}", params=(name,))
    with pytest.raises(ValueError, match="path parameters"):
        declare(path="/probe/{name}")
    with pytest.raises(ValueError, match="path parameters"):
        declare(path="/probe", params=(name,))


def test_declared_query_parameters_are_the_ones_the_query_parser_reads() -> None:
    assert {p.name for p in LIST_PARAMS} == set(QUERY_PARAMS)
    assert {p.name for p in GROUPING} == set(GROUPING_PARAMS)


async def takes_training(request: Request, body: TrainRequest) -> Response:
    return Response()


def test_scopes_are_known_and_body_scopes_name_fields_of_a_json_body() -> None:
    op = declare(
        scope="models:write",
        also_requires=("datasets:write",),
        body_scopes={"dataset": ("datasets:read", "models:write")},
        endpoint=takes_training,
        body=TrainRequest,
    )
    assert op.scopes == ("models:write", "datasets:write")
    assert op.body_scopes_of(TrainRequest(data=[{"x": 1}])) == ()
    assert op.body_scopes_of(TrainRequest(dataset=DatasetQuery(name="d"))) == ("datasets:read",)
    with pytest.raises(ValueError, match="unknown scopes \\['models:delete'\\]"):
        declare(scope="models:delete")
    with pytest.raises(ValueError, match="unknown scopes"):
        declare(scope="models:write", also_requires=("datasets:admin",))
    with pytest.raises(ValueError, match="public"):
        declare(also_requires=("datasets:read",))
    with pytest.raises(ValueError, match="not fields of TrainRequest"):
        declare(
            scope="models:write",
            body_scopes={"datasets": ("datasets:read",)},
            endpoint=takes_training,
            body=TrainRequest,
        )
    with pytest.raises(ValueError, match="JSON body only"):
        declare(scope="models:write", body_scopes={"dataset": ("datasets:read",)})
