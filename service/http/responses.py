"""JSON responses encoded by msgspec (Structs, datetimes, UUIDs; NaN and inf become null)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from service.domain.preconditions import Tagged


def _enc_hook(value: Any) -> Any:
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


# Exact aggregates (sum, avg, stddev) come back as Decimal; they are numbers in JSON.
_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, decimal_format="number")


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(value), status, headers, media_type="application/json")


def tagged_response(value: Tagged[Any], status: int = 200) -> Response:
    """The resource as JSON, with its `ETag`."""
    return json_response(value.value, status, {"ETag": value.etag})
