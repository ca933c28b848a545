"""Request bodies: content type, size limits (enforced while reading), msgspec decoding.

CSV streams into PostgreSQL in constant memory, so it gets the large `http.max_body_bytes`.
JSON is decoded into Python objects at once, some 30 times its size in memory, so it gets the
far smaller `http.max_json_bytes` as well.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from service.domain.errors import BadRequest, FieldError, InvalidInput
from service.http.problems import HttpProblem
from service.schemas.errors import split_validation_error
from service.settings import HttpSettings

T = TypeVar("T")

CSV = "text/csv"
_JSON = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)
_RAW_BODY = "service.raw_body"

_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder


class CsvBody:
    """A `text/csv` body, handed to the endpoint unread: it streams into PostgreSQL."""

    def __init__(self, request: Request, limit: int, read_timeout: float) -> None:
        self._request = request
        self._limit = limit
        self._read_timeout = read_timeout

    def chunks(self) -> AsyncIterator[bytes]:
        return limited_stream(self._request, self._limit, read_timeout=self._read_timeout)


def is_json(request: Request) -> bool:
    return bool(_JSON.match(request.headers.get("content-type", "")))


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def limited_stream(
    request: Request, limit: int, what: str = "the body", read_timeout: float | None = None
) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 as soon as it passes `limit` (or says it will), 408 when
    the client sends nothing for `read_timeout` seconds (a stalled client is cut, not waited
    for: see `service.process.hypercorn_config` for why Hypercorn's own timeout is not it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)  # before a byte of the body is read
    size = 0
    chunks = request.stream()
    while True:
        try:
            async with asyncio.timeout(read_timeout):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _stalled(read_timeout) from None
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, what)
        if chunk:
            yield chunk


async def whole_body(request: Request, limit: int, what: str, read_timeout: float) -> bytes:
    """The whole body, as `limited_stream` reads it, taken straight from `receive`: every
    prediction comes this way, and a small body is one piece, which this reads under one
    timeout, without the two async generators (and three timeouts) of the streamed path."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, what)
    receive = request.receive
    pieces: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(read_timeout):
                message = await receive()
        except TimeoutError:
            raise _stalled(read_timeout) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        piece: bytes = message.get("body", b"")
        size += len(piece)
        if size > limit:
            raise _too_large(limit, what)
        pieces.append(piece)
        if not message.get("more_body", False):
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _stalled(read_timeout: float | None) -> HttpProblem:
    return HttpProblem(408, f"the client sent nothing for {read_timeout:g} s (http.read_timeout)")


def _too_large(limit: int, what: str) -> HttpProblem:
    return HttpProblem(413, f"{what} is larger than the limit of {limit} bytes")


async def read_body(request: Request, type_: Any, http: HttpSettings, csv: bool = False) -> Any:
    """The declared body decoded from JSON, or (when the operation takes CSV) a `CsvBody`.

    `http.max_body_bytes` bounds every body; `http.max_json_bytes`, when smaller, a JSON one."""
    limit = http.max_body_bytes
    if csv and _is_csv(request):
        return CsvBody(request, limit, http.read_timeout)
    if not is_json(request):
        expected = "application/json or text/csv" if csv else "application/json"
        raise HttpProblem(
            415, f"expected Content-Type {expected}, got '{content_type(request) or 'nothing'}'"
        )
    what = "the body"
    if http.max_json_bytes < limit:
        limit = http.max_json_bytes
        what = "the JSON body (http.max_json_bytes)"
        if csv:
            what = "the JSON body (http.max_json_bytes; send large data as text/csv)"
    raw = await whole_body(request, limit, what, http.read_timeout)
    request.scope[_RAW_BODY] = raw
    return decode_json(raw, type_)


def raw_body(request: Request) -> bytes:
    """The bytes of the JSON body the dispatcher decoded (for idempotency keys)."""
    raw = request.scope.get(_RAW_BODY)
    assert isinstance(raw, bytes), "the operation declares no JSON body"
    return raw


def _is_csv(request: Request) -> bool:
    if content_type(request) != CSV:
        return False
    charset = request.headers.get("content-type", "").lower().partition("charset=")[2]
    if charset.strip().strip('"') not in ("", "utf-8", "utf8"):
        raise HttpProblem(415, "CSV bodies must be UTF-8")
    return True


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
        text, loc = split_validation_error(exc)
        raise InvalidInput("the body does not match the schema", [FieldError(loc, text)]) from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    except RecursionError:  # msgspec decodes on the C stack, bounded by the recursion limit
        raise BadRequest("malformed JSON: arrays or objects nested too deeply") from None
