"""Server-Sent Events on the wire: the `text/event-stream` framing and the response that carries
a stream (`GET /events`, `GET /jobs/{id}/events`).

The response is a `BoundedStreamingResponse` with no deadline: a client that stops reading is
cut after `http.send_timeout`, and one that disconnects ends the stream at once (Starlette
listens for the disconnect beside the body). Either way the body is closed, which releases the
caller's stream slot and the subscription.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from typing import Generic, TypeVar

from service.domain.errors import QueryTimeout, Unavailable
from service.domain.streams import Signal
from service.http.metrics import ApiMetrics
from service.http.streaming import BoundedStreamingResponse

log = logging.getLogger(__name__)

T = TypeVar("T")

MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": keep-alive\n\n"
# A comment, so an EventSource shows nothing; it reconnects by itself (with Last-Event-ID) when
# the body ends, to a server that is not stopping.
CLOSING = b": closing, the server is stopping; reconnect\n\n"
# Proxies must neither cache nor buffer a stream (`X-Accel-Buffering` is nginx's switch).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: bytes, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE message. A line break inside `data` would end the field, so each line of the
    data becomes a `data:` line of its own (a reader joins them back with newlines)."""
    head = b""
    if event_id is not None:
        head += b"id: %d\n" % event_id
    if event is not None:
        head += b"event: " + _field(event) + b"\n"
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def _field(value: str) -> bytes:
    return value.replace("\r", " ").replace("\n", " ").encode()


class EventStreamBody(Generic[T]):
    """The body of an event stream: `first` (already produced, so the checks before it ran
    before the response started), then the rest of `items`, each encoded by `encode` into
    zero or more messages. `aclose` ends `items` even if the body never started."""

    def __init__(
        self,
        first: T | Signal,
        items: AsyncGenerator[T | Signal, None],
        encode: Callable[[T], list[bytes]],
        metrics: ApiMetrics,
        route: str,
    ) -> None:
        self._first = first
        self._items = items
        self._encode = encode
        self._metrics = metrics
        self._route = route
        self._chunks = self._generate()

    def __aiter__(self) -> EventStreamBody[T]:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self._items.aclose()

    async def _generate(self) -> AsyncGenerator[bytes, None]:
        open_streams = self._metrics.sse_open_streams.labels(self._route)
        sent = self._metrics.sse_events_sent.labels(self._route)
        open_streams.inc()
        try:
            item = self._first
            while True:
                if isinstance(item, Signal):
                    if item is Signal.CLOSING:
                        yield CLOSING
                        return
                    yield HEARTBEAT
                else:
                    messages = self._encode(item)
                    if messages:
                        sent.inc(len(messages))
                        yield b"".join(messages)
                try:
                    item = await anext(self._items)
                except StopAsyncIteration:
                    return
        except (Unavailable, QueryTimeout) as exc:
            # The stream has started, so no problem document can be sent; the client
            # reconnects, and `GET /events` resumes from its Last-Event-ID.
            log.warning("ended a stream: %s", exc.detail, extra={"route": self._route})
        finally:
            open_streams.dec()


def stream_response(body: EventStreamBody[T], send_timeout: float) -> BoundedStreamingResponse:
    return BoundedStreamingResponse(
        body, send_timeout=send_timeout, deadline=None, media_type=MEDIA_TYPE, headers=HEADERS
    )
