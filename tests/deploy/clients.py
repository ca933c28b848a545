"""Clients of the api through its Service, as its users run them: a steady loop of requests over
kept-alive connections, recording every outcome, and an event-stream follower that reconnects
with `Last-Event-ID` whenever the server ends its stream, as an EventSource does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import msgspec

from tests.sse import SseMessage, parse

PAUSE_SECONDS = 0.05  # between one client's requests: steady, not saturating, load
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    expected: int
    body: Any = None


@dataclass
class Outcome:
    call: Call
    status: int | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != self.call.expected


@dataclass
class LoadClient:
    """Makes `calls` in turn, again and again, until `stop` is set."""

    url: str
    token: str
    calls: list[Call]
    outcomes: list[Outcome] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        async with httpx2.AsyncClient(
            base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS, trust_env=False
        ) as client:
            while not stop.is_set():
                for call in self.calls:
                    try:
                        response = await client.request(call.method, call.path, json=call.body)
                    except httpx2.HTTPError as exc:
                        self.outcomes.append(Outcome(call, None, repr(exc)))
                    else:
                        status = response.status_code
                        detail = None if status == call.expected else response.text
                        self.outcomes.append(Outcome(call, status, detail))
                    await asyncio.sleep(PAUSE_SECONDS)


@dataclass
class StreamEnd:
    """How one connection of a follower ended."""

    events: int  # events it carried
    closing: bool  # its last message was the server's closing comment
    complete: bool  # the body ended at a message boundary, by the server's own end
    error: str | None = None


@dataclass
class Follower:
    """Follows `GET /events` from the first event on (`Last-Event-ID: 0`) until `last` says an
    event is the last one wanted; reconnects at once whenever a stream ends."""

    url: str
    token: str
    last: Callable[[dict[str, Any]], bool]
    events: list[SseMessage] = field(default_factory=list)
    ends: list[StreamEnd] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ids(self) -> list[int]:
        return [int(e.id) for e in self.events if e.id is not None]

    async def run(self) -> None:
        async with httpx2.AsyncClient(
            base_url=self.url, timeout=httpx2.Timeout(TIMEOUT_SECONDS), trust_env=False
        ) as client:
            while not await self._follow(client):
                pass

    async def _follow(self, client: httpx2.AsyncClient) -> bool:
        """One connection; True once the last wanted event has come."""
        headers = {
            "authorization": f"Bearer {self.token}",
            "accept": "text/event-stream",
            "last-event-id": str(self.ids[-1]) if self.events else "0",
        }
        buffer, count, messages = b"", 0, list[SseMessage]()
        try:
            async with client.stream("GET", "/events", headers=headers) as response:
                self.statuses.append(response.status_code)
                if response.status_code != 200:
                    await response.aread()
                    self.ends.append(StreamEnd(0, False, True, response.text))
                    return False
                self.subscribed.set()
                async for chunk in response.aiter_raw():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, _, buffer = buffer.partition(b"\n\n")
                        message = parse(block.decode())
                        messages.append(message)
                        if message.comment is None:
                            self.events.append(message)
                            count += 1
                            if self.last(msgspec.json.decode(message.data or "null")):
                                return True
        except httpx2.HTTPError as exc:
            self.ends.append(StreamEnd(count, False, False, repr(exc)))
            return False
        closing = bool(messages) and (messages[-1].comment or "").startswith("closing")
        self.ends.append(StreamEnd(count, closing, not buffer.strip()))
        return False
