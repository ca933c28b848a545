"""Request bodies: content-type check, a size cap enforced while reading, msgspec decoding."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from service.domain.errors import BadRequest, FieldError, InvalidInput
from service.http.problems import HttpProblem

T = TypeVar("T")

_JSON = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder


def is_json(request: Request) -> bool:
    return bool(_JSON.match(request.headers.get("content-type", "")))


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def check_declared_size(request: Request, limit: int) -> None:
    """Refuse early on `Content-Length`, before a byte of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, f"the body is larger than the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    check_declared_size(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpProblem(413, f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, type_: type[T], limit: int) -> T:
    if not is_json(request):
        raise HttpProblem(
            415,
            f"expected Content-Type application/json, got '{content_type(request) or 'nothing'}'",
        )
    return decode_json(await read_body(request, limit), type_)


# `\u0000` not itself escaped: PostgreSQL text and jsonb cannot hold NUL, so refuse it here.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def decode_json(body: bytes, type_: type[T]) -> T:
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        raise InvalidInput(
            "the body contains a NUL character (\\u0000), which cannot be stored",
            [FieldError(loc="$", msg="NUL characters are not allowed")],
        )
    try:
        value: T = _decoder(type_).decode(body)
        return value
    except msgspec.ValidationError as exc:
        raise InvalidInput("the body does not match the schema", [validation_error(exc)]) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    except RecursionError:  # msgspec decodes on the C stack, bounded by the recursion limit
        raise BadRequest("malformed JSON: arrays or objects nested too deeply") from None


def validation_error(exc: msgspec.ValidationError) -> FieldError:
    """Split msgspec's `Expected `int`, got `str` - at `$.a[0]`` into a located error."""
    text, sep, where = str(exc).rpartition(" - at `")
    if not sep:
        return FieldError(loc="$", msg=str(exc))
    return FieldError(loc=where.rstrip("`"), msg=text)
