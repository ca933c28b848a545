"""Model and model-type endpoints: decode, call the domain, encode."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import NotFound
from service.http.bodies import read_json
from service.http.params import multi_params, path_str
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.query import parse_query
from service.schemas.models import ModelCreate, ModelPatch
from service.schemas.predictions import PredictRequest


async def list_model_types(request: Request) -> Response:
    svc = services(request)
    query = parse_query(multi_params(request))
    return json_response(await svc.model_types.list(query))


async def get_model_type(request: Request) -> Response:
    svc = services(request)
    name = path_str(request, "type")
    model_type = await svc.model_types.get(name)
    if model_type is None:
        raise NotFound(f"model type '{name}' does not exist")
    return json_response(model_type)


async def create_model(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, ModelCreate, svc.settings.http.max_body_bytes)
    model = await svc.models.create(body, principal_of(request).sub)
    return json_response(model, 201, {"Location": f"/models/{model.name}"})


async def list_models(request: Request) -> Response:
    svc = services(request)
    return json_response(await svc.models.list(parse_query(multi_params(request))))


async def get_model(request: Request) -> Response:
    return json_response(await services(request).models.get(path_str(request, "name")))


async def patch_model(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, ModelPatch, svc.settings.http.max_body_bytes)
    return json_response(await svc.models.patch(path_str(request, "name"), body))


async def delete_model(request: Request) -> Response:
    svc = services(request)
    await svc.jobs.delete_model(path_str(request, "name"))
    return Response(status_code=204)


async def predict(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, PredictRequest, svc.settings.http.max_body_bytes)
    return json_response(await svc.predictor.predict(path_str(request, "name"), body))
