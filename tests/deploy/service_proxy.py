"""A Service on this machine, as kube-proxy makes one: each new TCP connection goes to the next
ready pod the Service selects (round robin), and stays with that pod for its whole life, even
after the pod has left the endpoints (as an established connection keeps its NAT entry). With
no ready pod a connection is refused (closed at once)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from tests.deploy.kubelet import Kubelet, Pod
from tests.tcpproxy import free_port


class ServiceProxy:
    def __init__(self, kubelet: Kubelet, name: str, port: int | str | None = None) -> None:
        """`port`: which of the Service's ports (name or number; the first by default)."""
        service = kubelet.object("Service", name)
        self.kubelet = kubelet
        self.selector: dict[str, str] = service["spec"]["selector"]
        ports: list[dict[str, Any]] = service["spec"]["ports"]
        chosen = next(p for p in ports if port in (None, p.get("name"), p["port"]))
        self.target_port: int | str = chosen.get("targetPort", chosen["port"])
        self.port = free_port()
        self.connections: dict[str, int] = {}  # pod name → connections it was given
        self.refused = 0
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def _pick(self) -> Pod | None:
        endpoints = self.kubelet.endpoints(self.selector)
        return endpoints[next(self._turn) % len(endpoints)] if endpoints else None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pod = self._pick()
        try:
            if pod is None:
                raise ConnectionRefusedError("no ready endpoint")
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", pod.port(self.target_port)
            )
        except OSError:
            self.refused += 1
            writer.close()
            return
        self.connections[pod.name] = self.connections.get(pod.name, 0) + 1
        task = asyncio.create_task(_splice(reader, writer, up_reader, up_writer))
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Both directions until both have ended; an end in one is passed on as a half-close, so
    each side sees the other's FIN as it would on a direct connection."""
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        for end in (writer, up_writer):
            with contextlib.suppress(Exception):
                end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        # A reset on one side resets the other: close both at once.
        writer.transport.abort()
