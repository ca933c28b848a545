"""Open Inference Protocol tensors to numpy and back, with no per-row Python objects.

A request tensor's `data` (kept undecoded until its `datatype` is known) is parsed once by a
typed msgspec decoder into a flat or nested list and becomes one numpy array; binary tensors
(the protocol's binary data extension: `parameters.binary_data_size` bytes after the JSON) are
read in place with `np.frombuffer`. Outputs go the other way: `ndarray.ravel().tolist()` for
JSON, `ndarray.tobytes()` for binary.

`Tensors` is a form of prediction rows (`service.serving.inputs.Rows`): one 2-D tensor
`[rows, features]` in the model's feature order, or one tensor per feature named after it
(`[rows]` or `[rows, 1]`), turned into the model's feature matrix once the version is known.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from service.domain.errors import FieldError, InvalidInput
from service.domain.limits import too_many_rows
from service.estimators.predicting import Prediction
from service.schemas.errors import split_validation_error
from service.schemas.inference import Parameters, RequestInput, ResponseOutput
from service.serving.inputs import Matrix
from service.serving.registry import LoadedModel

NUMPY: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_ELEMENT: dict[str, Any] = {"BOOL": bool, "BYTES": str}
_FLAT: dict[Any, msgspec.json.Decoder[Any]] = {}
_NESTED: dict[Any, msgspec.json.Decoder[Any]] = {}
_LENGTH = struct.Struct("<I")  # a BYTES element's length prefix in binary data


def _element(datatype: str) -> Any:
    return _ELEMENT.get(datatype, float if datatype.startswith("FP") else int)


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput("the inference request is invalid", [FieldError(loc, msg)])


# -- request tensors --------------------------------------------------------------------------


def decode_inputs(
    inputs: Sequence[RequestInput], binary: memoryview | None, max_rows: int
) -> list[tuple[str, np.ndarray]]:
    """Each input tensor as an array of its shape. Binary parts are taken in input order;
    `max_rows` is checked on the shapes, before any data is parsed."""
    rows = _check_shapes(inputs, max_rows)
    arrays: list[tuple[str, np.ndarray]] = []
    at = 0
    for i, tensor in enumerate(inputs):
        where = f"$.inputs[{i}]"
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise _invalid(f"{where}.parameters.binary_data_size", "expected a byte count")
            if binary is None or at + size > len(binary):
                raise _invalid(where, "names more binary data than the request holds")
            flat = _from_binary(tensor, binary[at : at + size], where)
            at += size
        else:
            flat = _from_json(tensor, where)
        arrays.append((tensor.name, flat.reshape(tensor.shape)))
    if binary is not None and at != len(binary):
        raise _invalid("$.inputs", f"{len(binary) - at} bytes of binary data belong to no input")
    assert all(a.shape[0] == rows for _, a in arrays)
    return arrays


def _check_shapes(inputs: Sequence[RequestInput], max_rows: int) -> int:
    names: set[str] = set()
    rows = None
    for i, tensor in enumerate(inputs):
        where = f"$.inputs[{i}]"
        if tensor.name in names:
            raise _invalid(f"{where}.name", f"input {tensor.name!r} is given twice")
        names.add(tensor.name)
        if len(tensor.shape) not in (1, 2):
            raise _invalid(f"{where}.shape", "expected [rows] or [rows, features]")
        if rows is not None and tensor.shape[0] != rows:
            raise _invalid(f"{where}.shape", f"has {tensor.shape[0]} rows; inputs[0] has {rows}")
        rows = tensor.shape[0]
    assert rows is not None  # at least one input (schema)
    if rows > max_rows:
        raise too_many_rows("$.inputs[0].shape", rows, max_rows)
    return rows


def _from_json(tensor: RequestInput, where: str) -> np.ndarray:
    raw = bytes(tensor.data)
    if not raw:
        raise _invalid(f"{where}.data", "missing (and no parameters.binary_data_size)")
    element = _element(tensor.datatype)
    count = math.prod(tensor.shape)
    try:
        values = _decoder(_FLAT, list[element]).decode(raw)  # type: ignore[valid-type]
    except msgspec.ValidationError as flat_error:
        try:
            nested = _decoder(_NESTED, list[list[element]]).decode(raw)  # type: ignore[valid-type]
        except msgspec.ValidationError:
            text, loc = split_validation_error(flat_error)
            raise _invalid(where + ".data" + loc[1:], text) from None
        if set(map(len, nested)) - {len(nested[0]) if nested else 0}:
            raise _invalid(f"{where}.data", "nested rows of different lengths") from None
        values = [value for row in nested for value in row]
    except msgspec.DecodeError as exc:
        raise _invalid(f"{where}.data", f"malformed JSON: {exc}") from None
    if len(values) != count:
        raise _invalid(
            f"{where}.data", f"holds {len(values)} elements; shape {tensor.shape} needs {count}"
        )
    try:
        return np.array(values, dtype=NUMPY[tensor.datatype])
    except OverflowError:
        raise _invalid(f"{where}.data", f"a value does not fit {tensor.datatype}") from None


def _from_binary(tensor: RequestInput, data: memoryview, where: str) -> np.ndarray:
    count = math.prod(tensor.shape)
    if tensor.datatype == "BYTES":
        return _bytes_elements(data, count, where)
    dtype = np.dtype(NUMPY[tensor.datatype]).newbyteorder("<")
    if len(data) != count * dtype.itemsize:
        raise _invalid(
            f"{where}.parameters.binary_data_size",
            f"{len(data)} bytes; shape {tensor.shape} of {tensor.datatype} needs"
            f" {count * dtype.itemsize}",
        )
    return np.frombuffer(data, dtype=dtype)


def _bytes_elements(data: memoryview, count: int, where: str) -> np.ndarray:
    if count * _LENGTH.size > len(data):  # before allocating: the shape may be any size
        raise _invalid(f"{where}.parameters.binary_data_size", f"too short for {count} elements")
    values = np.empty(count, dtype=np.object_)
    at = 0
    for i in range(count):
        if at + 4 > len(data):
            raise _invalid(f"{where}.parameters.binary_data_size", f"ends before element {i}")
        (length,) = _LENGTH.unpack_from(data, at)
        at += 4
        if at + length > len(data):
            raise _invalid(f"{where}.parameters.binary_data_size", f"ends inside element {i}")
        try:
            values[i] = bytes(data[at : at + length]).decode()
        except UnicodeDecodeError:
            raise _invalid(f"{where}.data", f"element {i} is not UTF-8 text") from None
        at += length
    if at != len(data):
        raise _invalid(f"{where}.parameters.binary_data_size", f"more bytes than {count} elements")
    return values


def _decoder(cache: dict[Any, msgspec.json.Decoder[Any]], type_: Any) -> msgspec.json.Decoder[Any]:
    found = cache.get(type_)
    if found is None:
        found = cache[type_] = msgspec.json.Decoder(type_)
    return found


@dataclass(frozen=True, slots=True)
class Tensors:
    """Decoded input tensors, as prediction rows."""

    arrays: list[tuple[str, np.ndarray]]
    field: str = "$.inputs"

    @property
    def size(self) -> int:
        return int(self.arrays[0][1].shape[0])

    def matrix(self, model: LoadedModel) -> Any:
        features = model.features
        if len(self.arrays) == 1 and self.arrays[0][1].ndim == 2:
            values = self.arrays[0][1]
            if values.shape[1] != len(features):
                raise _invalid(
                    "$.inputs[0].shape",
                    f"has {values.shape[1]} columns; the model takes {len(features)} features"
                    f" ({', '.join(features)})",
                )
            return Matrix(values, "$.inputs[0].data").matrix(model)
        return Matrix(self._by_feature(features), "$.inputs").matrix(model)

    def _by_feature(self, features: list[str]) -> np.ndarray:
        named = dict(self.arrays)
        missing = [name for name in features if name not in named]
        unknown = [name for name in named if name not in set(features)]
        if missing or unknown:
            parts = [f"no tensor for feature {name!r}" for name in missing]
            parts += [f"{name!r} is not a feature of the model" for name in unknown]
            msg = "; ".join(parts) + f" (send one 2-D tensor, or one per feature: {features})"
            raise _invalid("$.inputs", msg)
        columns = []
        for i, name in enumerate(features):
            column = named[name]
            if column.ndim == 2 and column.shape[1] != 1:
                raise _invalid(f"$.inputs[{i}].shape", "a feature's tensor is [rows] or [rows, 1]")
            columns.append(column.reshape(-1))
        if all(c.dtype.kind in "fiub" for c in columns):
            return np.column_stack(columns)
        values = np.empty((self.size, len(columns)), dtype=np.object_)
        for j, column in enumerate(columns):
            values[:, j] = column
        return values


# -- response tensors -------------------------------------------------------------------------


def datatype_of(values: np.ndarray) -> str:
    kind, size = values.dtype.kind, values.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iuf":
        prefix = {"i": "INT", "u": "UINT", "f": "FP"}[kind]
        return f"{prefix}{size * 8}"
    return "BYTES"


def encode_output(name: str, prediction: Prediction, binary: bool) -> tuple[ResponseOutput, bytes]:
    """The output tensor and, when `binary`, its bytes (to follow the JSON)."""
    values = prediction.values
    datatype = datatype_of(values)
    shape = list(values.shape)
    if not binary:
        data = values.ravel().tolist() if datatype != "BYTES" else _texts(values)
        return ResponseOutput(name=name, shape=shape, datatype=datatype, data=data), b""
    if datatype == "BYTES":
        parts = [s.encode() for s in _texts(values)]
        raw = b"".join(_LENGTH.pack(len(p)) + p for p in parts)
    else:
        raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    parameters: Parameters = {"binary_data_size": len(raw)}
    return ResponseOutput(name=name, shape=shape, datatype=datatype, parameters=parameters), raw


def _texts(values: np.ndarray) -> list[Any]:
    return [v if isinstance(v, str) else str(v) for v in values.ravel().tolist()]


def wants_binary(request: Parameters | None, output: Parameters | None) -> bool:
    """The binary data extension: per output `binary_data`, else the request's
    `binary_data_output`."""
    own = (output or {}).get("binary_data")
    if isinstance(own, bool):
        return own
    return (request or {}).get("binary_data_output") is True
