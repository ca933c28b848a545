"""What bearer authentication costs a request: the same cheap scoped route with and without it.

    .venv/bin/python -m bench.bench_auth [--via asgi|client] [--requests N] [--rounds R]
    (from the repository root)

Both apps have create_app's middleware stack and the real route dispatcher around one route
that needs `models:read` and does nothing, and both get the same request (with its
`Authorization` header). One runs with `[auth] mode = "disabled"`, the other verifies the
development JWT (jwt mode, `jwks_file`, all scopes). The client reuses its token, as real clients
do, so the token cache makes the signature check a one-off; that one-off cost is printed too.

`--via asgi` (default) calls the ASGI app directly: the request costs as little as it possibly
can, so this is the strictest ratio. `--via client` goes through an in-process httpx2 client,
closer to what a caller sees. Many short rounds alternate between the two apps, timed in process
CPU time, and the headline is the median ratio of adjacent rounds: on a busy machine both sides
of a pair see the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth.backend import BearerAuthenticator
from service.auth.factory import build_authenticator
from service.auth.principal import SCOPES, Authenticator
from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.http.edge import Edge
from service.http.metrics import ApiMetrics
from service.http.operation import Operation
from service.http.problems import exception_handlers
from service.http.routes import build_routes
from service.http.state import Services
from service.settings import AuthSettings, convert_settings

Runner = Callable[[int], Awaitable[float]]


async def ping(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


def build_app(auth: Authenticator) -> ASGIApp:
    """create_app's middleware and dispatcher around one cheap route that needs a scope."""
    metrics = ApiMetrics()
    # Only `auth` and `metrics` are used by the dispatcher; the rest stays empty.
    required = {
        f.name: None
        for f in fields(Services)
        if f.default is MISSING and f.default_factory is MISSING
    }
    values: dict[str, Any] = {**required, "auth": auth, "metrics": metrics}
    services = Services(**values)
    app = Starlette(
        routes=build_routes(
            [
                Operation(
                    operation_id="ping",
                    method="GET",
                    path="/ping",
                    endpoint=ping,
                    scope="models:read",
                    summary="ping",
                    tag="bench",
                )
            ]
        ),
        middleware=[
            Middleware(Edge, metrics=metrics),
        ],
        exception_handlers=exception_handlers(),
    )

    async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {"services": services}  # what the lifespan hands every request
        await app(scope, receive, send)

    return with_state


def asgi_runner(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> Runner:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    async def run(n: int) -> float:
        start = time.process_time()
        for _ in range(n):
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/ping",
                "raw_path": b"/ping",
                "query_string": b"",
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            }
            await app(scope, receive, send)
        return (time.process_time() - start) / n

    return run


def client_runner(client: httpx2.AsyncClient, headers: dict[str, str]) -> Runner:
    async def run(n: int) -> float:
        start = time.process_time()
        for _ in range(n):
            response = await client.get("/ping", headers=headers)
            assert response.status_code == 200, response.text
        return (time.process_time() - start) / n

    return run


async def compare(
    plain: Runner, authed: Runner, requests: int, rounds: int
) -> tuple[list[float], list[float]]:
    await plain(requests // 10)  # warm-up
    await authed(requests // 10)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(rounds):
        # Alternate which app goes first, and start each round with a clean heap, so neither
        # side systematically pays for the other's garbage.
        for which in (0, 1) if i % 2 == 0 else (1, 0):
            gc.collect()
            times[which].append(await (plain, authed)[which](requests))
    return times


async def first_verification_cost(
    auth: BearerAuthenticator, settings: AuthSettings, n: int
) -> float:
    """CPU seconds to verify a token never seen before (signature + claims), cache bypassed."""
    tokens = [mint_token(settings, f"user{i}", ["models:read"], 3600) for i in range(n)]
    start = time.process_time()
    for token in tokens:
        await auth.verifier.verify(token)
    return (time.process_time() - start) / n


async def main(via: str, requests: int, rounds: int) -> float:
    logging.getLogger("service.auth.factory").setLevel(logging.ERROR)  # the "DISABLED" warning
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "dev-jwk.json"
        jwks = write_dev_jwks(key_file)
        raw = {
            "mode": "jwt",
            "issuer": DEV_ISSUER,
            "audience": DEV_AUDIENCE,
            "jwks_file": str(jwks),
            "dev_key_file": str(key_file),
        }
        settings = convert_settings({"auth": raw}).auth
        jwt_auth = build_authenticator(settings)
        assert isinstance(jwt_auth, BearerAuthenticator)
        token = mint_token(settings, "bench", list(SCOPES), 3600)
        open_app = build_app(build_authenticator(AuthSettings(mode="disabled")))
        auth_app = build_app(jwt_auth)
        if via == "asgi":
            headers = [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())]
            plain, authed = await compare(
                asgi_runner(open_app, headers), asgi_runner(auth_app, headers), requests, rounds
            )
        else:
            hdrs = {"Authorization": f"Bearer {token}"}
            async with (
                httpx2.AsyncClient(
                    transport=httpx2.ASGITransport(app=open_app), base_url="http://bench"
                ) as c0,
                httpx2.AsyncClient(
                    transport=httpx2.ASGITransport(app=auth_app), base_url="http://bench"
                ) as c1,
            ):
                plain, authed = await compare(
                    client_runner(c0, hdrs), client_runner(c1, hdrs), requests, rounds
                )
        assert jwt_auth.verifier.verifications == 1, "the token cache did not hold"
        first = await first_verification_cost(jwt_auth, settings, 200)
        await jwt_auth.close()

    # Each round of one app runs right next to a round of the other, under the same load: the
    # median of those paired ratios is the headline; the ratio of the fastest rounds backs it.
    paired = statistics.median(a / p for a, p in zip(authed, plain, strict=True))
    print(f"driver: {via}; {rounds} rounds of {requests} requests per app")
    for name, values in (("auth disabled", plain), ("jwt, reused token", authed)):
        best, median = min(values) * 1e6, statistics.median(values) * 1e6
        print(f"{name:18}: {best:7.1f} µs CPU/request (median round {median:.1f})")
    print(f"first verification of a new token (ES256, then cached): {first * 1e6:.1f} µs")
    print(f"fastest rounds ratio: {min(authed) / min(plain):.3f}")
    print(
        f"ratio authenticated / disabled (median of paired rounds): {paired:.3f} (target <= 1.10)"
    )
    return paired


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--via", choices=("asgi", "client"), default="asgi")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.via, max(args.requests, 10), max(args.rounds, 1)))
