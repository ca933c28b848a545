"""CSV over HTTP: upload metadata from query parameters, `Accept` negotiation, streaming out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import msgspec

from service.domain.errors import BadRequest, FieldError, InvalidInput
from service.http.operation import Param
from service.http.params import single
from service.schemas.datasets import COLUMN_TYPES, DatasetCreate
from service.schemas.errors import split_validation_error

CSV = "text/csv"


def csv_meta(params: dict[str, list[str]], declared: Sequence[Param]) -> DatasetCreate:
    """The metadata of a CSV upload, from its query parameters (`columns=name:type`)."""
    names = [p.name for p in declared]
    for key in params:
        if key not in names:
            raise BadRequest(
                f"unknown parameter '{key[:40]}'",
                [FieldError(key[:40], f"expected one of {', '.join(names)}")],
            )
    raw: dict[str, Any] = {
        p.name: single(params, p.name) for p in declared if not p.repeated and p.name in params
    }
    if "tags" in params:
        raw["tags"] = params["tags"]
    if "columns" in params:
        raw["columns"] = [_column_param(i, text) for i, text in enumerate(params["columns"])]
    if "name" not in raw:
        raise InvalidInput("name the dataset", [FieldError("name", "required with a CSV body")])
    try:
        return msgspec.convert(raw, DatasetCreate)
    except msgspec.ValidationError as exc:
        text, where = split_validation_error(exc)
        loc = where.removeprefix("$").removeprefix(".").replace(".name", "") or "$"
        raise InvalidInput(f"invalid parameter {loc}: {text}", [FieldError(loc, text)]) from None


def _column_param(i: int, text: str) -> dict[str, str]:
    name, sep, type_ = text.rpartition(":")
    if not sep or type_ not in COLUMN_TYPES:
        raise InvalidInput(
            f"columns[{i}]: expected name:type, the type one of {', '.join(COLUMN_TYPES)}",
            [FieldError(f"columns[{i}]", f"expected name:type, got {text[:80]!r}")],
        )
    return {"name": name, "type": type_}


def wants_csv(accept: str) -> bool:
    """True when `Accept` prefers text/csv to application/json (`*/*` means JSON)."""
    weights: dict[str, float] = {}
    for part in accept.lower().split(","):
        media, *options = (p.strip() for p in part.split(";"))
        q = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media] = max(q, weights.get(media, 0.0))
    csv_q = weights.get(CSV, 0.0)
    return csv_q > 0 and csv_q >= weights.get("application/json", 0.0)


async def then(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    """`first`, then the rest of the stream, closing it even when the client goes away."""
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:  # a client gone mid-stream: end the cursor's transaction now, not at collection
        await rest.aclose()
