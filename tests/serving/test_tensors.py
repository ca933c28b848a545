"""Open Inference Protocol tensors: every datatype from JSON (flat or nested) and from binary
data, the checks that name the bad place, and outputs back in both encodings."""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import numpy as np
import pytest

from service.domain.errors import InvalidInput
from service.domain.limits import TooLarge
from service.estimators.predicting import Prediction
from service.schemas.inference import RequestInput
from service.serving.tensors import (
    NUMPY,
    datatype_of,
    decode_inputs,
    encode_output,
    wants_binary,
)
from tests.factories import errors_of


def tensor(datatype: Any, shape: list[int], data: Any = None, **parameters: Any) -> RequestInput:
    raw = msgspec.Raw() if data is None else msgspec.Raw(msgspec.json.encode(data))
    return RequestInput(
        name="t", shape=shape, datatype=datatype, parameters=parameters or None, data=raw
    )


def one(t: RequestInput, binary: bytes | None = None) -> np.ndarray:
    view = None if binary is None else memoryview(binary)
    [(name, array)] = decode_inputs([t], view, 1000)
    assert name == "t"
    return array


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("FP64", [1.5, -2.0, 3.25, 1e300]),
        ("FP32", [1.5, -2.0, 3.25, 0.0]),
        ("FP16", [1.5, -2.0, 3.25, 0.0]),
        ("INT64", [1, -2, 3, 2**62]),
        ("INT32", [1, -2, 3, 2**31 - 1]),
        ("INT8", [1, -2, 3, 127]),
        ("UINT8", [1, 2, 3, 255]),
        ("BOOL", [True, False, True, True]),
    ],
)
def test_json_and_binary_give_the_same_array(datatype: str, values: list[Any]) -> None:
    expected = np.array(values, dtype=NUMPY[datatype]).reshape(2, 2)
    flat = one(tensor(datatype, [2, 2], values))
    nested = one(tensor(datatype, [2, 2], [values[:2], values[2:]]))
    raw = expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    binary = one(tensor(datatype, [2, 2], binary_data_size=len(raw)), raw)
    for got in (flat, nested, binary):
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_bytes_elements_from_json_and_length_prefixed_binary() -> None:
    words = ["red", "", "grün", "blue"]
    raw = b"".join(struct.pack("<I", len(w.encode())) + w.encode() for w in words)
    assert one(tensor("BYTES", [4], words)).tolist() == words
    assert one(tensor("BYTES", [4], binary_data_size=len(raw)), raw).tolist() == words


@pytest.mark.parametrize(
    ("t", "binary", "where"),
    [
        (tensor("FP64", [2, 2], [1, 2, 3]), None, "$.inputs[0].data"),
        (tensor("FP64", [2, 2], [[1, 2], [3]]), None, "$.inputs[0].data"),
        (tensor("FP64", [2], [1, "x"]), None, "$.inputs[0].data[1]"),
        (tensor("INT32", [1], [2**40]), None, "$.inputs[0].data"),
        (tensor("BOOL", [1], [1]), None, "$.inputs[0].data[0]"),
        (tensor("FP64", [2, 2, 1], [1, 2, 3, 4]), None, "$.inputs[0].shape"),
        (tensor("FP64", [2]), None, "$.inputs[0].data"),
        (tensor("FP64", [2], binary_data_size=8), b"\0" * 8, "$.inputs[0].parameters"),
        (tensor("FP64", [1], binary_data_size=8), b"\0" * 4, "$.inputs[0]"),
        (tensor("FP64", [1], binary_data_size="8"), b"\0" * 8, "$.inputs[0].parameters"),
        (tensor("FP64", [1], binary_data_size=8), b"\0" * 9, "$.inputs"),
        (tensor("BYTES", [1], binary_data_size=4), b"\5\0\0\0", "$.inputs[0].parameters"),
        (tensor("BYTES", [1], binary_data_size=5), b"\1\0\0\0\xff", "$.inputs[0].data"),
        # A shape far larger than the bytes sent is refused before anything is allocated.
        (tensor("BYTES", [1, 2**31 - 1], binary_data_size=4), b"\0" * 4, "$.inputs[0].param"),
    ],
)
def test_a_bad_tensor_is_named(t: RequestInput, binary: bytes | None, where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        one(t, binary)
    assert any(loc.startswith(where) for loc in errors_of(caught)), errors_of(caught)


def test_inputs_must_agree_on_rows_and_names() -> None:
    a = RequestInput(name="a", shape=[2], datatype="FP64", data=msgspec.Raw(b"[1, 2]"))
    b = RequestInput(name="b", shape=[3], datatype="FP64", data=msgspec.Raw(b"[1, 2, 3]"))
    with pytest.raises(InvalidInput) as rows:
        decode_inputs([a, b], None, 10)
    assert "$.inputs[1].shape" in errors_of(rows)
    with pytest.raises(InvalidInput) as twice:
        decode_inputs([a, a], None, 10)
    assert "$.inputs[1].name" in errors_of(twice)


def test_too_many_rows_is_refused_before_the_data_is_parsed() -> None:
    huge = RequestInput(name="t", shape=[11, 1], datatype="FP64", data=msgspec.Raw(b"not json"))
    with pytest.raises(TooLarge):
        decode_inputs([huge], None, 10)


@pytest.mark.parametrize(
    ("values", "datatype"),
    [
        (np.array([1.5, 2.5]), "FP64"),
        (np.array([1.5, 2.5], np.float32), "FP32"),
        (np.array([1, 2]), "INT64"),
        (np.array([True, False]), "BOOL"),
        (np.array(["a", "bc"]), "BYTES"),
        (np.array(["a", "bc"], dtype=object), "BYTES"),
    ],
)
def test_outputs_in_json_and_binary(values: np.ndarray, datatype: str) -> None:
    prediction = Prediction("predict", values)
    as_json, nothing = encode_output("predict", prediction, binary=False)
    assert (as_json.datatype, as_json.shape, nothing) == (datatype, [2], b"")
    assert as_json.data == values.tolist()
    as_binary, raw = encode_output("predict", prediction, binary=True)
    assert as_binary.data is None and as_binary.parameters == {"binary_data_size": len(raw)}
    back = one(tensor(datatype, [2], binary_data_size=len(raw)), raw)
    assert back.tolist() == values.tolist()


def test_datatypes_and_binary_choice() -> None:
    assert datatype_of(np.zeros((2, 3), np.uint16)) == "UINT16"
    assert wants_binary({"binary_data_output": True}, None)
    assert not wants_binary({"binary_data_output": True}, {"binary_data": False})
    assert wants_binary(None, {"binary_data": True})
    assert not wants_binary(None, None)
