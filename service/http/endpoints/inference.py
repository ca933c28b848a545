"""The Open Inference Protocol (V2, REST): health, model metadata and readiness, inference.

Versions, aliases' targets and traffic splits apply as on `POST /models/{name}/predict`: an
inference without a version follows the model's split. Errors take the protocol's shape
(`service.http.problems`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import Conflict, FieldError, InvalidInput
from service.domain.versions import Description
from service.estimators.model_type import OUTPUTS
from service.http import examples
from service.http.endpoints.operations import readiness
from service.http.endpoints.versions import VERSION
from service.http.inference import InferenceBody, inference_response, read_inference
from service.http.operation import Endpoint, Operation, Param
from service.http.params import MODEL_NAME, path_int, path_str
from service.http.responses import json_response
from service.http.routes import principal_of
from service.http.state import services
from service.logs import request_id
from service.repositories.versions import VersionRow
from service.schemas.inference import (
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerReady,
)
from service.serving.tensors import Tensors, decode_inputs, encode_output, wants_binary

PLATFORM = "scikit-learn"


async def server_live(request: Request) -> Response:
    return json_response(ServerLive(live=True))


async def server_ready(request: Request) -> Response:
    checks = await readiness(services(request))
    ready = all(v == "ok" for v in checks.values())
    return json_response(ServerReady(ready), 200 if ready else 503)


async def model_metadata(request: Request) -> Response:
    name = path_str(request, "name")
    return json_response(metadata_of(await services(request).versions.describe(name)))


async def model_ready(request: Request) -> Response:
    tenant = principal_of(request).tenant
    name = path_str(request, "name")
    try:
        await services(request).registry.resolve(tenant, name, None)
    except Conflict:  # no version yet, nothing to output, too large to serve online
        return json_response(ModelReady(name=name, ready=False), 400)
    return json_response(ModelReady(name=name, ready=True))


async def infer(request: Request, body: InferenceBody) -> Response:
    return await _infer(request, body, None)


async def infer_version(request: Request, body: InferenceBody) -> Response:
    return await _infer(request, body, path_int(request, "version", "version"))


async def _infer(request: Request, body: InferenceBody, version: int | None) -> Response:
    svc = services(request)
    tenant = principal_of(request).tenant
    name = path_str(request, "name")
    asked = body.request.outputs or []
    outputs = _output_names([o.name for o in asked])
    arrays = decode_inputs(body.request.inputs, body.binary, svc.settings.limits.max_predict_rows)
    answer = await svc.predictor.predict(
        tenant, name, Tensors(arrays), outputs, version, None, request_id.get() or ""
    )
    tensors, binary = [], []
    for i, prediction in enumerate(answer.predictions):
        own = asked[i].parameters if asked else None
        tensor, raw = encode_output(
            prediction.output, prediction, wants_binary(body.request.parameters, own)
        )
        tensors.append(tensor)
        binary.append(raw)
    response = InferenceResponse(
        model_name=name,
        model_version=str(answer.model.version),
        id=body.request.id,
        outputs=tensors,
    )
    return inference_response(response, binary)


def _output_names(names: list[str]) -> list[str]:
    for i, name in enumerate(names):
        if name not in OUTPUTS:
            msg = f"unknown output {name[:100]!r}; outputs are {', '.join(OUTPUTS)}"
            raise InvalidInput("unknown output", [FieldError(f"$.outputs[{i}].name", msg)])
        if name in names[:i]:
            msg = f"output {name!r} is asked for twice"
            raise InvalidInput("repeated output", [FieldError(f"$.outputs[{i}].name", msg)])
    return names


def metadata_of(described: Description) -> ModelMetadata:
    row = described.current
    return ModelMetadata(
        name=described.name,
        versions=[str(v) for v in described.versions],
        platform=PLATFORM,
        inputs=[] if row is None else _inputs(row),
        outputs=[] if row is None else _outputs(row),
    )


def _inputs(row: VersionRow) -> list[MetadataTensor]:
    return [
        MetadataTensor(
            name=feature,
            datatype="BYTES" if row.feature_kinds.get(feature) == "text" else "FP64",
            shape=[-1],
        )
        for feature in row.features
    ]


def _outputs(row: VersionRow) -> list[MetadataTensor]:
    classes = row.classes
    width = -1 if classes is None else len(classes)
    shapes: dict[str, tuple[str, list[int]]] = {
        "predict": (_label_type(classes), [-1]),
        "predict_proba": ("FP64", [-1, width]),
        "decision_function": ("FP64", [-1] if width in (-1, 2) else [-1, width]),
        "transform": ("FP64", [-1, -1]),
    }
    return [
        MetadataTensor(name=output, datatype=shapes[output][0], shape=shapes[output][1])
        for output in row.outputs
        if output in shapes
    ]


def _label_type(classes: list[Any] | None) -> str:
    if classes is None:
        return "FP64"
    if all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if all(isinstance(c, int) for c in classes):
        return "INT64"
    if all(isinstance(c, int | float) for c in classes):
        return "FP64"
    return "BYTES"


_INFER_DESCRIPTION = (
    "Inputs: one 2-D tensor `[rows, features]` in the model's feature order, or one tensor "
    "per feature named after it. Outputs: `predict` (the model's default when none is asked "
    "for), `predict_proba`, `decision_function` or `transform`. The binary data extension "
    "is supported both ways (`Inference-Header-Content-Length`, `binary_data_size`, "
    '`binary_data_output`). Errors are `{"error": "..."}`; an invalid request is a 400.'
)
_V2 = "open-inference"


def _infer_operation(
    operation_id: str, path: str, endpoint: Endpoint, which: str, params: tuple[Param, ...]
) -> Operation:
    return Operation(
        operation_id=operation_id,
        method="POST",
        path=path,
        endpoint=endpoint,
        scope="models:predict",
        summary=f"Open Inference Protocol: inference ({which})",
        tag=_V2,
        body=InferenceRequest,
        reader=read_inference,
        example=examples.INFER,
        response=InferenceResponse,
        params=params,
        errors=(400, 404, 409, 413, 504),
        description=_INFER_DESCRIPTION,
    )


OPERATIONS = [
    Operation(
        operation_id="v2_server_live",
        method="GET",
        path="/v2/health/live",
        endpoint=server_live,
        scope=None,
        summary="Open Inference Protocol: the server is live",
        tag=_V2,
        response=ServerLive,
    ),
    Operation(
        operation_id="v2_server_ready",
        method="GET",
        path="/v2/health/ready",
        endpoint=server_ready,
        scope=None,
        summary="Open Inference Protocol: PostgreSQL and Redis answer",
        tag=_V2,
        response=ServerReady,
        extra_responses={503: "Not ready"},
    ),
    Operation(
        operation_id="v2_model_metadata",
        method="GET",
        path="/v2/models/{name}",
        endpoint=model_metadata,
        scope="models:read",
        summary="Open Inference Protocol: a model's versions, inputs and outputs",
        tag=_V2,
        response=ModelMetadata,
        params=(MODEL_NAME,),
        errors=(404,),
        description="Inputs and outputs are the current version's: one FP64 (or BYTES, for a "
        "text feature) tensor per feature, and one tensor per output the model offers. "
        "`versions` lists the newest 1 000.",
    ),
    Operation(
        operation_id="v2_model_ready",
        method="GET",
        path="/v2/models/{name}/ready",
        endpoint=model_ready,
        scope="models:predict",
        summary="Open Inference Protocol: the model can answer (its current version loads)",
        tag=_V2,
        response=ModelReady,
        params=(MODEL_NAME,),
        errors=(404,),
        extra_responses={400: "Not ready: no trained version, or too large to serve online"},
    ),
    _infer_operation(
        "v2_infer",
        "/v2/models/{name}/infer",
        infer,
        "the model's traffic split decides",
        (MODEL_NAME,),
    ),
    _infer_operation(
        "v2_infer_version",
        "/v2/models/{name}/versions/{version}/infer",
        infer_version,
        "by one version",
        (MODEL_NAME, VERSION),
    ),
]
