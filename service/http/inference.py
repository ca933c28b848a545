"""Open Inference Protocol bodies on the wire: the JSON request, optionally followed by binary
tensor data (the binary data extension), and the response framed the same way.

With the `Inference-Header-Content-Length` header the first that many bytes are the JSON and
the rest is binary tensor data; without it the body is JSON alone. Clients of the protocol
often send no `Content-Type`, so none is required; a different one than JSON or
`application/octet-stream` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import BadRequest
from service.http.bodies import content_type, decode_json, whole_body
from service.http.problems import HttpProblem
from service.http.responses import encode
from service.schemas.inference import InferenceRequest, InferenceResponse
from service.settings import HttpSettings

HEADER_LENGTH = "inference-header-content-length"
_MEDIA = ("", "application/json", "application/octet-stream")


@dataclass(frozen=True, slots=True)
class InferenceBody:
    request: InferenceRequest
    binary: memoryview | None  # the bytes after the JSON, when the client sent any


async def read_inference(request: Request, http: HttpSettings) -> InferenceBody:
    media = content_type(request)
    if media not in _MEDIA:
        raise HttpProblem(415, f"expected JSON or application/octet-stream, got '{media}'")
    declared = request.headers.get(HEADER_LENGTH)
    # JSON becomes Python objects, binary tensors stay bytes: each gets its own limit.
    limit = http.max_json_bytes if declared is None else http.max_body_bytes
    what = "the body" if declared is None else "the body with its binary data"
    raw = await whole_body(request, limit, what, http.read_timeout)
    if declared is None:
        return InferenceBody(decode_json(raw, InferenceRequest), None)
    if not declared.isdigit() or int(declared) > len(raw):
        raise BadRequest(f"{HEADER_LENGTH} must be a byte count within the body")
    length = int(declared)
    if length > http.max_json_bytes:
        raise HttpProblem(413, f"the JSON part is larger than {http.max_json_bytes} bytes")
    view = memoryview(raw)
    return InferenceBody(decode_json(raw[:length], InferenceRequest), view[length:])


def inference_response(response: InferenceResponse, binary: list[bytes]) -> Response:
    """JSON alone, or JSON then the outputs' binary data when any output is binary."""
    header = encode(response)
    if not any(binary):
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *binary]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
