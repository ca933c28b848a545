"""The one ASGI layer around every request: request id, access log, metrics, rate-limit fields
and the last-resort 500.

It is one pure-ASGI layer, not four middlewares, because each layer costs every request a
coroutine call and a wrapped `send`. Pure ASGI (no BaseHTTPMiddleware), so streaming bodies
pass through untouched.

- `X-Request-ID` on every response: the request's own when it is sane, else a new one; it is
  in the `request_id` context variable (and `principal` starts empty) while the request runs,
  so every log line of the request carries it.
- Metrics per method and route template (never the raw path; a 405 counts under the route
  whose method it lacks), and requests in flight.
- The `RateLimit-Policy` and `RateLimit` fields the dispatcher left in the scope
  (`rate_limits.py`) on every response to a checked request, unless its `Retry-After` has
  another cause.
- A bug becomes a 500 problem carrying the request id, logged with its traceback. Starlette's
  own last-resort handler sits outside every user middleware, so its responses would carry no
  request id and would re-raise into the server.
- The access log line (`http.access_log`), and always one for a 5xx.
- Once the server is told to stop (`service.http.draining`): `Connection: close` on every
  HTTP/1 response (HTTP/2 has no such field; its connections end with a GOAWAY), and the count
  of requests in flight and the time of the last, for the lame-duck wait.
- Whether a request is served alone, for the predictor (`serving.batching.in_flight`): a short
  prediction runs on the event loop only then. A request leaves the count of those not yet
  answered when its response starts, so open event streams do not stay in it.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.draining import Drain
from service.http.metrics import ApiMetrics
from service.http.problems import problem
from service.http.rate_limits import SCOPE_KEY
from service.logs import principal, request_id
from service.serving.batching import InFlight, in_flight

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("service.access")
# The logger of the error-to-HTTP mapping, where a 500 was always logged.
log = logging.getLogger("service.http.problems")


_CLOSE = (b"connection", b"close")
# The methods metrics name; any other a client invents counts as OTHER, so it cannot add series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "OTHER"


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        metrics: ApiMetrics,
        log_access: bool = False,
        drain: Drain | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.log_access = log_access
        self.drain = Drain() if drain is None else drain
        # `.labels(...)` takes a lock and builds a key on every call: the children are kept
        # here, one pair per (method, route, status) seen, as bounded as the labels themselves.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._served = InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope["headers"])
        rid_header = (b"x-request-id", rid.encode())
        rid_token = request_id.set(rid)
        sub_token = principal.set(None)
        served = self._served
        served.arrived(scope.get("client"))
        served_token = in_flight.set(served)
        status = 0
        start = time.perf_counter()
        drain = self.drain
        drain.in_flight += 1
        drain.last_activity = start

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                served.count -= 1
                headers = _headers(message.get("headers", ()), scope, rid_header)
                if drain.draining and scope.get("http_version", "1.1").startswith("1"):
                    headers = [h for h in headers if h[0].lower() != b"connection"]
                    headers.append(_CLOSE)
                message["headers"] = headers
            await send(message)

        gauge = self.metrics.in_flight
        gauge.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error")
            if status:
                raise
            response = problem(
                Request(scope), 500, "an unexpected error occurred; it has been logged"
            )
            await response(scope, receive, send_wrapper)
        finally:
            gauge.dec()
            drain.in_flight -= 1
            drain.last_activity = time.perf_counter()
            elapsed = drain.last_activity - start
            self._observe(scope, status or 500, elapsed)
            if self.log_access or status >= 500:
                access_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
            if not status:
                served.count -= 1
            in_flight.reset(served_token)
            principal.reset(sub_token)
            request_id.reset(rid_token)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        method: str = scope["method"] if scope["method"] in METHODS else OTHER
        route = route_template(scope)
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.metrics.requests.labels(method, route, str(status)),
                self.metrics.latency.labels(method, route),
            )
        series[0].inc()
        series[1].observe(elapsed)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            return incoming if _SANE.match(incoming) else _new_id()
    return _new_id()


# The bits a version-4 UUID fixes (version 4, RFC 4122 variant) and their values.
_UUID4_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_BITS = (0x4000 << 64) | (0x8000 << 48)


def _new_id() -> str:
    """A random version-4 UUID in hex, like `uuid.uuid4().hex`, from the process's generator
    (seeded from the OS at start): `uuid4` reads the OS's on every call, a system call that
    also hands the GIL to a busy prediction thread. An id names a request; it guards nothing."""
    return f"{random.getrandbits(128) & _UUID4_MASK | _UUID4_BITS:032x}"


def _headers(
    headers: Any, scope: Scope, rid_header: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    """The response's fields, plus the request id (replacing any) and the rate-limit fields."""
    out = [h for h in headers if h[0].lower() != b"x-request-id"]
    checked = scope.get(SCOPE_KEY)
    if checked:
        wait, fields = checked
        retry_after = next((v for k, v in out if k.lower() == b"retry-after"), wait)
        if retry_after == wait:
            out.extend(fields)
    out.append(rid_header)
    return out


def route_template(scope: Scope) -> str:
    """The template of the route that answered (`/models/{name}`), never the raw path."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    # No route in the scope (a 404); one that matches but for the method still names it.
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", []):
        match, _ = candidate.matches(scope)
        if match is not Match.NONE:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"
