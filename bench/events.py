"""Issue 14: how long an event takes to reach a webhook, and what open streams cost the api.

Delivery lag: a receiver on 127.0.0.1 (the bench's own process) subscribes to `job.succeeded`;
jobs are trained one after another and each delivery's lag is the receiver's clock at arrival
minus the job's `finished_at` in the event (one machine, one clock). It covers the commit, the
NOTIFY that wakes the worker's deliverer, the claim, the address check and the POST.

Streams: the api's prediction throughput (iris, one row, c64) with 200 `GET /events` streams
open against none, rounds alternating. The streams stay open and idle but for heartbeats, as a
dashboard's would between events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

import msgspec

from bench import api, data
from bench.common import Config, Section, med, pct, spread
from bench.harness import free_port, running_service
from bench.load import LoadResult, describe_tool, load

STREAMS = 200
LAG_JOBS = 40
THROUGHPUT_RATIO_TARGET = 0.9


class Receiver:
    """Answers 200 at once and keeps when each delivery's body arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.server: asyncio.Server | None = None
        self.arrived = asyncio.Event()

    async def received(self, count: int) -> None:
        while True:
            self.arrived.clear()
            if len(self.arrivals) >= count:
                return
            await self.arrived.wait()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            self.arrivals.append((time.time(), msgspec.json.decode(body)))
            self.arrived.set()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _lag(client: Any, jobs: int) -> list[float]:
    receiver = Receiver()
    await receiver.start()
    try:
        hook = {"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["job.succeeded"]}
        response = await client.post("/webhooks", json=hook)
        if response.status_code != 201:
            raise RuntimeError(f"POST /webhooks: {response.status_code} {response.text}")
        _, _, records = data.iris()
        for _ in range(jobs):
            await api.train(client, "iris", records)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.received(jobs), 60)
        if len(receiver.arrivals) < jobs:
            raise RuntimeError(f"{len(receiver.arrivals)} of {jobs} deliveries arrived")
        return [at - _epoch(event["data"]["finished_at"]) for at, event in receiver.arrivals]
    finally:
        await receiver.stop()


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@contextlib.asynccontextmanager
async def _open_streams(url: str, count: int) -> Any:
    """`count` open `GET /events` streams, each read and discarded until closed."""
    host, _, port = url.removeprefix("http://").partition(":")
    request = f"GET /events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.Task[None]] = []

    async def drain(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request.encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"GET /events: {status!r}")
        writers.append(writer)
        readers.append(asyncio.create_task(drain(reader)))
    try:
        yield
    finally:
        for writer in writers:
            writer.close()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def _throughput(url: str, body: bytes, config: Config) -> dict[str, list[LoadResult]]:
    target = f"{url}/models/iris/predict"
    await load(target, connections=64, seconds=config.warmup, body=body)
    results: dict[str, list[LoadResult]] = {"none": [], f"{STREAMS} streams": []}
    for rep in range(config.reps):
        order = [False, True] if rep % 2 == 0 else [True, False]
        for with_streams in order:
            label = f"{STREAMS} streams" if with_streams else "none"
            if with_streams:
                async with _open_streams(url, STREAMS):
                    r = await load(target, connections=64, seconds=config.seconds, body=body)
            else:
                r = await load(target, connections=64, seconds=config.seconds, body=body)
            results[label].append(r)
            print(
                f"  round {rep + 1}: {label:12} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  errors {r.errors}",
                flush=True,
            )
    return results


async def run(config: Config) -> Section:
    section = Section("Events: delivery lag and open streams (issue 14)")
    async with (
        running_service(
            webhooks__allow_private="true", streams__max_streams_per_caller=str(STREAMS + 10)
        ) as svc,
        svc.client() as client,
    ):
        features, target, records = data.iris()
        await api.create_model(
            client,
            "iris",
            "sklearn.linear_model.LogisticRegression",
            target=target,
            settings={"max_iter": 1000},
        )
        lags = await _lag(client, 10 if config.quick else LAG_JOBS)
        body = msgspec.json.encode({"data": data.rows_of(records, features, 1)})
        results = await _throughput(svc.url, body, config)
    section.line(
        f"{config.reps} × {config.seconds:g} s rounds per scenario; load tool: {describe_tool()}."
    )
    section.line()
    ms = [x * 1e3 for x in lags]
    section.table(
        ["delivery lag, job finished → receiver", "p50 ms", "p99 ms", "max ms", "deliveries"],
        [["job.succeeded", f"{pct(ms, 0.5):.1f}", f"{pct(ms, 0.99):.1f}",
          f"{max(ms):.1f}", str(len(ms))]],
    )  # fmt: skip
    rows = [
        [label, spread([r.rps for r in rs]), spread([r.p50_ms for r in rs], ".2f"),
         spread([r.p99_ms for r in rs], ".2f"), str(sum(r.errors for r in rs))]
        for label, rs in results.items()
    ]  # fmt: skip
    section.table(["open streams", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    none, some = results["none"], results[f"{STREAMS} streams"]
    ratios = [b.rps / a.rps for a, b in zip(none, some, strict=True)]
    verdict = "met" if med(ratios) >= THROUGHPUT_RATIO_TARGET else "missed"
    section.line(
        f"Throughput with {STREAMS} open streams ÷ without, per round: {spread(ratios, '.3f')}"
        f" (target ≥ {THROUGHPUT_RATIO_TARGET}: {verdict})."
    )
    return section
