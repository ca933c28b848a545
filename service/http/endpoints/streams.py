"""Server-Sent Event streams: a job as it changes, and every event of the caller's tenant."""

from __future__ import annotations

import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from service.domain.errors import BadRequest, FieldError
from service.http.endpoints.jobs import JOB_ID
from service.http.operation import Operation, Param
from service.http.params import multi_params, only, path_uuid, single
from service.http.sse import EventStreamBody, frame, stream_response
from service.http.state import services
from service.schemas.jobs import JobOut
from service.schemas.streams import StreamedEvent

JOB_EVENTS = "/jobs/{job_id}/events"
EVENTS = "/events"

LAST_EVENT_ID = Param(
    name="Last-Event-ID",
    where="header",
    schema={"type": "string", "pattern": "^[0-9]{1,18}$"},
    description="Resume after this event (the `id:` of the last one received): every later "
    "event is replayed, none twice. Without it the stream starts at the current end.",
)
LAST_EVENT_ID_QUERY = Param(
    name="last_event_id",
    where="query",
    schema={"type": "string", "pattern": "^[0-9]{1,18}$"},
    description="`Last-Event-ID` for clients that cannot set headers; the header wins.",
)
_POSITION = re.compile(r"^[0-9]{1,18}$")
_json = msgspec.json.Encoder()


async def stream_job(request: Request) -> Response:
    svc = services(request)
    job_id = path_uuid(request, "job_id", "job")
    only(multi_params(request), (), "this stream takes no query parameters")
    updates = svc.streams.job(job_id)
    first = await anext(updates)  # another tenant's or no job: a 404, not a broken stream
    body = EventStreamBody(first, updates, _job_messages, svc.metrics, JOB_EVENTS)
    return stream_response(body, svc.settings.http.send_timeout)


async def stream_events(request: Request) -> Response:
    svc = services(request)
    after = _last_event_id(request)
    events = svc.streams.events(after)
    first = await anext(events)  # over the caller's cap: a 429 before the stream starts
    body = EventStreamBody(first, events, _event_messages, svc.metrics, EVENTS)
    return stream_response(body, svc.settings.http.send_timeout)


def _job_messages(job: JobOut) -> list[bytes]:
    return [frame(_json.encode(job), event="job")]


def _event_messages(batch: list[StreamedEvent]) -> list[bytes]:
    return [frame(e.body.encode(), event=e.type, event_id=e.position) for e in batch]


def _last_event_id(request: Request) -> int | None:
    params = multi_params(request)
    only(params, (LAST_EVENT_ID_QUERY,), "the only parameter is last_event_id")
    header = request.headers.get("last-event-id")
    raw, loc = (
        (header, "Last-Event-ID")
        if header is not None
        else (
            single(params, "last_event_id"),
            "last_event_id",
        )
    )
    if raw is None or raw.strip() == "":
        return None  # EventSource sends an empty Last-Event-ID before any event had an id
    if not _POSITION.fullmatch(raw.strip()):
        raise BadRequest(
            f"{loc} is not an event id", [FieldError(loc, "expected the id: of an event")]
        )
    return int(raw.strip())


OPERATIONS = [
    Operation(
        operation_id="stream_job",
        method="GET",
        path=JOB_EVENTS,
        endpoint=stream_job,
        scope="models:read",
        summary="Follow a job (Server-Sent Events)",
        tag="jobs",
        params=(JOB_ID,),
        extra_responses={200: "A `text/event-stream` of Server-Sent Events"},
        errors=(404, 429),
        description="Sends the job at once and then each time it changes (`event: job`, the "
        "job as `GET /jobs/{job_id}` shows it); the stream ends after the job's final state. "
        "A comment line (`: keep-alive`) comes every `streams.heartbeat_seconds`; 429 when the "
        "caller already holds `streams.max_streams_per_caller` streams on this server.",
    ),
    Operation(
        operation_id="stream_events",
        method="GET",
        path=EVENTS,
        endpoint=stream_events,
        scope="models:read",
        summary="Every event of the tenant (Server-Sent Events)",
        tag="events",
        params=(LAST_EVENT_ID, LAST_EVENT_ID_QUERY),
        extra_responses={200: "A `text/event-stream` of Server-Sent Events"},
        errors=(400, 429),
        description="Each event of the outbox as `id: <position>`, `event: <type>`, `data:` the "
        "body a webhook gets (`id`, `type`, `timestamp`, `tenant`, `data`). With "
        "`Last-Event-ID` it replays every later event first, then goes live; without, it "
        "starts at the current end (only new events). Comment lines keep it alive.",
    ),
]
