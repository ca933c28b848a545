"""Wire types of the Open Inference Protocol (V2, REST): the KServe / Triton / MLServer shapes.

Unknown fields are ignored rather than refused (unlike our own bodies): clients of the protocol
send extensions this service does not know, and must still be served. A tensor's `data` is
kept undecoded (`msgspec.Raw`) until its `datatype` says what it holds, so it is parsed once,
straight into typed values (`service.serving.tensors`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

DataType = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Parameter = str | int | float | bool
Parameters = Annotated[dict[str, Parameter], msgspec.Meta(max_length=100)]
TensorName = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Dimension = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
_DATA_SCHEMA = {
    "type": "array",
    "description": "The tensor's elements in row-major order, flat or nested; left out when "
    "the elements follow the JSON in binary (`parameters.binary_data_size`).",
}


class RequestInput(msgspec.Struct, kw_only=True):
    name: TensorName
    shape: Annotated[list[Dimension], msgspec.Meta(max_length=8)]
    datatype: DataType
    parameters: Parameters | None = None
    data: Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema=_DATA_SCHEMA)] = msgspec.field(
        default_factory=msgspec.Raw
    )


class RequestOutput(msgspec.Struct, kw_only=True):
    name: TensorName
    parameters: Parameters | None = None


class InferenceRequest(msgspec.Struct, kw_only=True):
    """Inputs: one 2-D tensor `[rows, features]` in the model's feature order, or one 1-D
    tensor per feature, named after it. Outputs: any of `predict`, `predict_proba`,
    `decision_function`, `transform` the model offers; the model's default when left out."""

    id: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    parameters: Parameters | None = None
    inputs: Annotated[list[RequestInput], msgspec.Meta(min_length=1, max_length=10_000)]
    outputs: Annotated[list[RequestOutput], msgspec.Meta(max_length=4)] | None = None


class ResponseOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(msgspec.Struct, kw_only=True):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct, kw_only=True):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerLive(msgspec.Struct):
    live: bool


class ServerReady(msgspec.Struct):
    ready: bool


class ModelReady(msgspec.Struct):
    name: str
    ready: bool


class InferenceError(msgspec.Struct):
    error: str
