"""The api's last moments after SIGTERM, before Hypercorn closes its connections.

Hypercorn, once told to stop, closes every idle kept-alive connection at once. A client that
sent its next request on one a moment earlier (it is in flight through the network, or through
a proxy) gets the connection closed under it: "server disconnected without sending a
response", a failed request that no retry policy covers for a POST. Behind a Kubernetes
Service this happens at every rolling restart: established connections stay with the old pod
after it has left the endpoints, and its clients keep using them until it closes them.

So the server first goes lame duck: it keeps serving, and every response says
`Connection: close`, so each client, told with its next answer, goes elsewhere on its own. When
no request is in flight and none has come for `QUIET_SECONDS`, the connections left are idle
ones, and Hypercorn's shutdown goes on; at the latest after `http.keep_alive_timeout`, when it
would have closed any idle connection anyway.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A connection that has carried no request for this long is idle: closing it races with a
# new request only as often as the keep-alive timeout does.
QUIET_SECONDS = 1.0
_POLL_SECONDS = 0.05


class Drain:
    """Whether the server is stopping, and how busy it still is."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.last_activity = time.monotonic()

    async def wait_quiet(self, longest: float) -> None:
        """Returns once no request is in flight and none came for `QUIET_SECONDS`, or after
        `longest` seconds."""
        deadline = time.monotonic() + longest
        while time.monotonic() < deadline:
            if not self.in_flight and time.monotonic() - self.last_activity >= QUIET_SECONDS:
                return
            await asyncio.sleep(_POLL_SECONDS)


class DrainMiddleware:
    """Counts requests in flight; while draining, adds `Connection: close` to each response."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drain = self.drain
        drain.in_flight += 1
        drain.last_activity = time.monotonic()
        try:
            # HTTP/2 has no such header (its connections end with a GOAWAY frame).
            if drain.draining and scope.get("http_version", "1.1").startswith("1"):
                await self.app(scope, receive, _closing(send))
            else:
                await self.app(scope, receive, send)
        finally:
            drain.in_flight -= 1
            drain.last_activity = time.monotonic()


def _closing(send: Send) -> Send:
    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return send_closing
