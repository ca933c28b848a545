"""Reading a Server-Sent Events response of the app in process, message by message.

httpx2's ASGI transport hands a response over only once its body is complete, and a stream
completes only when it ends; so `open_stream` drives the ASGI app itself, with a `receive` that
reports the client's disconnect when the test closes the stream, and a `send` that queues the
body as it comes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import msgspec
from starlette.types import ASGIApp, Message

READ_SECONDS = 60.0  # a bound on a wait for something the test expects; never asserted on


@dataclass
class SseMessage:
    """One message; a comment line (`: keep-alive`) is a message with only `comment`."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    comment: str | None = None

    def json(self) -> Any:
        assert self.data is not None, self
        return msgspec.json.decode(self.data)


@dataclass
class SseStream:
    status: int
    headers: dict[str, str]
    body: bytes  # the whole body when it is not a stream (a problem document)
    _chunks: asyncio.Queue[bytes | None]
    _disconnect: asyncio.Event
    _task: asyncio.Task[None]
    _buffer: bytes = b""
    ended: bool = False  # the app finished the body (its last `more_body: False`)
    received: list[SseMessage] = field(default_factory=list)

    async def next(self) -> SseMessage | None:
        """The next message, or None once the body has ended."""
        while b"\n\n" not in self._buffer:
            chunk = await asyncio.wait_for(self._chunks.get(), READ_SECONDS)
            if chunk is None:
                assert not self._buffer.strip(), f"a partial message at the end: {self._buffer!r}"
                return None
            self._buffer += chunk
        block, _, self._buffer = self._buffer.partition(b"\n\n")
        message = parse(block.decode())
        self.received.append(message)
        return message

    async def next_event(self) -> SseMessage:
        """The next message that is not a comment."""
        while True:
            message = await self.next()
            assert message is not None, f"the stream ended; it sent {self.received}"
            if message.comment is None:
                return message

    async def rest(self) -> list[SseMessage]:
        """Every message until the body ends."""
        found = []
        while (message := await self.next()) is not None:
            found.append(message)
        return found

    async def close(self) -> None:
        """The client goes away; returns once the app has finished with the request."""
        self._disconnect.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self._task, READ_SECONDS)


def parse(block: str) -> SseMessage:
    message = SseMessage()
    data: list[str] = []
    for line in block.split("\n"):
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            message.comment = value
        elif name == "data":
            data.append(value)
        elif name in ("event", "id"):
            setattr(message, name, value)
    if data:
        message.data = "\n".join(data)
    return message


async def open_stream(
    app: ASGIApp,
    path: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> SseStream:
    """GETs `path`; returns when the response has started (so the stream is subscribed)."""
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    disconnect = asyncio.Event()
    started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    request_sent = False
    stream: SseStream | None = None

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.set_result(message)
        elif message["type"] == "http.response.body":
            if message.get("body"):
                await chunks.put(message["body"])
            if not message.get("more_body", False):
                if stream is not None:
                    stream.ended = True
                await chunks.put(None)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": urlencode(params or {}).encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 123),
        "server": ("testserver", 80),
    }

    async def request() -> None:
        try:
            await app(scope, receive, send)
        finally:
            if not started.done():
                started.set_exception(AssertionError(f"the app sent no response to GET {path}"))

    task = asyncio.create_task(request())
    start = await asyncio.wait_for(started, READ_SECONDS)
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    stream = SseStream(start["status"], response_headers, b"", chunks, disconnect, task)
    if start["status"] != 200:
        stream.body = b"".join([c async for c in _drain(chunks)])
        await stream.close()
    return stream


async def _drain(chunks: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await asyncio.wait_for(chunks.get(), READ_SECONDS)) is not None:
        yield chunk
