"""Streamed responses that cannot be held open forever by a client that reads slowly.

A CSV export reads its rows through a cursor in one snapshot, so while it streams it holds a
pooled connection, a transaction and PostgreSQL's cleanup horizon. Rows are produced only as
fast as the client takes them (the send waits while the socket's buffers are full), so a reader
that stalls would hold all of that for as long as it likes. Two bounds:

- `send_timeout`: each piece must be taken by the client within it; a reader that stops
  reading is cut after the kernel's buffers fill plus this long.
- `deadline`: the whole response, for a reader that takes a trickle, just fast enough (None
  for an event stream, which is meant to stay open; a cut reader of one simply reconnects).

Cut, the body iterator is closed at once (ending the snapshot and releasing the connection) and
the response ends without its last chunk, so the server closes the connection and the client
sees an incomplete body, never a short file that looks whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Send

log = logging.getLogger(__name__)


class BoundedStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        send_timeout: float,
        deadline: float | None,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.send_timeout = send_timeout
        self.deadline = deadline

    async def stream_response(self, send: Send) -> None:
        stage = "a slow reader"
        try:
            async with asyncio.timeout(self.deadline) as whole:
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": self.raw_headers,
                    }
                )
                async for chunk in self.body_iterator:
                    data = chunk.encode(self.charset) if isinstance(chunk, str) else bytes(chunk)
                    async with asyncio.timeout(self.send_timeout):
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                async with asyncio.timeout(self.send_timeout):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            if whole.expired():
                stage = "the deadline"
            log.warning(
                "cut a streamed response",
                extra={
                    "reason": stage,
                    "send_timeout": self.send_timeout,
                    "deadline": self.deadline,
                },
            )
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
