"""Issue 16: what tracing costs a cached prediction, off (against the code before it) and on.

Three apis run side by side in one bench run, each with its own database, queue and worker:
`main` (the last commit before tracing, checked out with `git worktree add --detach` into the run's
temp dir: its own code and migrations), `off` (this tree, `[tracing]` off: no middleware, no
instrumentation, no SDK even imported) and `on` (this tree, tracing on with `sample_ratio` 0.1,
exporting over OTLP/HTTP to a receiver in this process that decodes and counts every span it
is sent). `iris` (LogisticRegression) is trained through each side's api and worker; then the
workers stop and the cached 1-row prediction is measured at concurrency 1. Every round runs it
on each side back to back, the order reversed every other round (main/off/on, on/off/main), so
drift hits all alike; a ratio is side ÷ main within a round, then the median over the rounds.
Targets (p50): off ÷ main ≤ 1.02, on ÷ main ≤ 1.10. CPU per request of the api process is
reported too: the cost itself, far less disturbed than latency by a busy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec

from bench import api, data, harness
from bench.common import Config, Section, med, spread
from bench.load import LoadResult, describe_tool, load
from bench.pg_probe import cpu_seconds
from bench.tenancy import TreeProcess

BASE_COMMIT = "39fc886"  # the last commit before tracing
SAMPLE_RATIO = 0.1
LIMITS = {"off": 1.02, "on": 1.10}  # p50 ÷ main's
CONNECTIONS = 1


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: counts the export requests, spans and server spans."""

    url: str = ""
    exports: int = 0
    spans: int = 0
    server_spans: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            export = ExportTraceServiceRequest()
            export.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            spans = [
                span
                for resource in export.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            with receiver.lock:
                receiver.exports += 1
                receiver.spans += len(spans)
                receiver.server_spans += sum(s.kind == Span.SPAN_KIND_SERVER for s in spans)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Side:
    label: str  # "main", "off" or "on"
    url: str
    db_name: str
    queue: str
    api: harness.Process
    worker: harness.Process


@dataclass(frozen=True)
class Round:
    result: LoadResult
    cpu_s: float

    @property
    def p50_ms(self) -> float:
        return self.result.p50_ms

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds of the api process per request."""
        return self.cpu_s * 1e3 / max(1, self.result.requests)


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(harness.ROOT), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@contextlib.contextmanager
def _base_tree(tmp: Path) -> Iterator[tuple[Path, str]]:
    path = tmp / "base-tree"
    _git("worktree", "add", "--detach", str(path), BASE_COMMIT)
    try:
        yield path, BASE_COMMIT
    finally:
        _git("worktree", "remove", "--force", str(path))
        _git("worktree", "prune")


async def _start(
    label: str, tree: Path, servers: harness.Servers, tmp: Path, settings: dict[str, object]
) -> Side:
    db_name = f"bench_{label}_{secrets.token_hex(5)}"
    queue = f"bench:{secrets.token_hex(6)}"
    db_url = harness.with_database(servers.postgres, db_name)
    env = harness._env(servers, db_url, queue, settings)
    env["PYTHONPATH"] = str(tree)
    env["SERVICE_WORKER_ID"] = f"bench-{label}-{queue}"
    await _create_and_migrate(servers.postgres, db_name, tree, env)
    python = [sys.executable, "-m", "service"]
    api_process = TreeProcess(f"api-{label}", [*python, "api"], env, tmp, tree)
    worker = TreeProcess(f"worker-{label}", [*python, "worker"], env, tmp, tree)
    url = f"http://127.0.0.1:{env['SERVICE__HTTP__BIND'].rpartition(':')[2]}"
    side = Side(label, url, db_name, queue, api_process, worker)
    await harness.wait_ready(url, [api_process, worker])
    return side


async def _create_and_migrate(
    admin_url: str, db_name: str, tree: Path, env: dict[str, str]
) -> None:
    """The database, migrated by the side's own code (`main` has fewer migrations)."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await conn.close()
    migrate = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "migrate",
        cwd=tree,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await migrate.communicate()
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate in {tree} failed:\n{out.decode(errors='replace')}")


async def _stop(side: Side, servers: harness.Servers) -> None:
    side.worker.stop()
    side.api.stop()
    await harness.drop_database(servers.postgres, side.db_name)
    harness.delete_queue_keys(servers.redis, side.queue)


async def _train_iris(side: Side) -> bytes:
    """`iris` trained through the side's api and worker; the 1-row body, predicted once."""
    features, target, records = data.iris()
    body = msgspec.json.encode({"data": data.rows_of(records, features, 1)})
    async with httpx2.AsyncClient(base_url=side.url, timeout=120) as client:
        model_type = "sklearn.linear_model.LogisticRegression"
        settings = {"max_iter": 1000}
        await api.create_model(client, "iris", model_type, target=target, settings=settings)
        await api.train(client, "iris", records)
        response = await client.post(
            "/models/iris/predict", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code != 200:
            raise RuntimeError(f"{side.label} predict: {response.status_code} {response.text}")
    return body


async def _measure(sides: list[Side], body: bytes, config: Config) -> dict[str, list[Round]]:
    url = "/models/iris/predict"
    for side in sides:
        await load(side.url + url, connections=CONNECTIONS, seconds=config.warmup, body=body)
    results: dict[str, list[Round]] = {side.label: [] for side in sides}
    for rep in range(config.reps):
        for side in sides if rep % 2 == 0 else sides[::-1]:
            before = cpu_seconds(side.api.pid)
            r = await load(
                side.url + url, connections=CONNECTIONS, seconds=config.seconds, body=body
            )
            done = Round(r, cpu_seconds(side.api.pid) - before)
            results[side.label].append(done)
            print(
                f"  round {rep + 1}: {side.label:4} {r.rps:8.1f} req/s  p50 {r.p50_ms:6.3f} ms"
                f"  p99 {r.p99_ms:6.2f} ms  CPU {done.cpu_ms:6.3f} ms/req  errors {r.errors}",
                flush=True,
            )
    return results


def _ratios(side: list[Round], base: list[Round], attr: str) -> list[float]:
    return [getattr(s, attr) / getattr(b, attr) for s, b in zip(side, base, strict=True)]


def _report(
    section: Section, results: dict[str, list[Round]], receiver: Receiver, config: Config
) -> None:
    section.line(
        f"{config.reps} rounds × {config.seconds:g} s per side after a warm-up, cached 1-row"
        f" `iris` prediction at concurrency {CONNECTIONS}; load tool: {describe_tool()}."
        " Median (min–max) over the rounds; a ratio is side ÷ main within each round (the sides"
        " ran back to back, order alternating), then the median of those. CPU: user + system"
        " time of the api process per request."
    )
    section.line()
    base = results["main"]
    rows = []
    for label, rounds in results.items():
        p50 = [r.p50_ms for r in rounds]
        cpu = [r.cpu_ms for r in rounds]
        row = [
            label,
            spread([r.result.rps for r in rounds], ".0f"),
            spread(p50, ".3f"),
            spread([r.result.p99_ms for r in rounds], ".2f"),
            spread(cpu, ".3f"),
            str(sum(r.result.errors for r in rounds)),
        ]
        if label == "main":
            row += ["—", "—", "—"]
        else:
            ratio, cpu_ratio = _ratios(rounds, base, "p50_ms"), _ratios(rounds, base, "cpu_ms")
            limit = LIMITS[label]
            verdict = "met" if med(ratio) <= limit else "**missed**"
            row += [
                f"**{med(ratio):.3f}** ({min(ratio):.3f}–{max(ratio):.3f}) {verdict}",
                f"≤ {limit:.2f}",
                f"{med(cpu_ratio):.3f} ({min(cpu_ratio):.3f}–{max(cpu_ratio):.3f})",
            ]
        rows.append(row)
    header = ["side", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors"]
    section.table([*header, "p50 ÷ main", "target", "CPU ÷ main"], rows)
    sent = sum(r.result.requests for r in results["on"])
    section.line(
        f"`on` exported {receiver.spans} spans in {receiver.exports} OTLP requests;"
        f" {receiver.server_spans} server spans for the {sent:,} measured predictions (plus"
        f" warm-up and training requests): {receiver.server_spans / max(1, sent):.1%} traced,"
        f" sample ratio {SAMPLE_RATIO}."
    )


async def run(config: Config) -> Section:
    section = Section("Tracing: off against the code before it, and on at 10 % (issue 16)")
    with (
        harness._servers_and_tmp() as (servers, tmp),
        _base_tree(tmp) as (base_tree, commit),
        otlp_receiver() as receiver,
    ):
        traced = {
            "tracing__enabled": "true",
            "tracing__sample_ratio": SAMPLE_RATIO,
            "tracing__otlp_endpoint": receiver.url,
        }
        plan = [("main", base_tree, {}), ("off", harness.ROOT, {}), ("on", harness.ROOT, traced)]
        sides: list[Side] = []
        try:
            for label, tree, settings in plan:
                sides.append(await _start(label, tree, servers, tmp, settings))
            body = [await _train_iris(side) for side in sides][0]
            for side in sides:  # its sweeps and heartbeats are not what is measured
                side.worker.stop()
            section.line(
                f"main: commit {commit}, the last before tracing: its own code, migrations and"
                " database;"
                " off and on: this tree. Auth disabled everywhere."
            )
            section.line()
            load_before = os.getloadavg()[0]
            results = await _measure(sides, body, config)
            busy = max(load_before, os.getloadavg()[0])
        finally:
            for side in sides:
                await _stop(side, servers)  # `on` exports its last spans as it stops
        _report(section, results, receiver, config)
    cores = os.cpu_count() or 1
    section.line()
    section.line(
        f"Load average around the measurement: up to {busy:.1f} on {cores} cores"
        + (
            ": a busy machine (other work ran meanwhile); these ratios are within its noise."
            if busy > cores
            else "."
        )
    )
    return section
