"""The framework floor: a bare Starlette app answering "hello" on one Hypercorn process.

    python -m bench.hello 127.0.0.1:PORT

Served exactly as `python -m service api` serves the service (hypercorn.asyncio.serve, one
process, no access log), so the gap between the two is what the service itself costs.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    await request.body()  # read a POST body as the service does
    return Response(b'{"hello":"world"}', media_type="application/json")


app = Starlette(routes=[Route("/", hello, methods=["GET", "POST"])])


def main(bind: str) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = "-"

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8001")
