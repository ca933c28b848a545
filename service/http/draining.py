"""The api's last moments after SIGTERM, before Hypercorn closes its connections.

Hypercorn, once told to stop, closes every idle kept-alive connection at once. A client that
sent its next request on one a moment earlier (it is in flight through the network, or through
a proxy) gets the connection closed under it: "server disconnected without sending a
response", a failed request that no retry policy covers for a POST. Behind a Kubernetes
Service this happens at every rolling restart: established connections stay with the old pod
after it has left the endpoints, and its clients keep using them until it closes them.

So the server first goes lame duck: it keeps serving, and every response says
`Connection: close` (the `Edge` layer, `service.http.edge`, adds it and counts the requests in
flight), so each client, told with its next answer, goes elsewhere on its own. When
no request is in flight and none has come for `QUIET_SECONDS`, the connections left are idle
ones, and Hypercorn's shutdown goes on; at the latest after `http.keep_alive_timeout`, when it
would have closed any idle connection anyway.
"""

from __future__ import annotations

import asyncio
import time

# A connection that has carried no request for this long is idle: closing it races with a
# new request only as often as the keep-alive timeout does.
QUIET_SECONDS = 1.0
_POLL_SECONDS = 0.05


class Drain:
    """Whether the server is stopping, and how busy it still is."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.last_activity = time.perf_counter()

    async def wait_quiet(self, longest: float) -> None:
        """Returns once no request is in flight and none came for `QUIET_SECONDS`, or after
        `longest` seconds."""
        deadline = time.perf_counter() + longest
        while time.perf_counter() < deadline:
            if not self.in_flight and time.perf_counter() - self.last_activity >= QUIET_SECONDS:
                return
            await asyncio.sleep(_POLL_SECONDS)
