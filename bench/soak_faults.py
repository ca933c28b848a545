"""The soak's fault injector: kill a worker mid-job, cut Redis, cut PostgreSQL, stall a client.

Faults repeat in a fixed cycle so a run of any length sees each of them; every outage is
recorded as a `Window` (wall-clock times), inside which a 503/504 is the expected answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx2

from bench.harness import Process, rss_bytes
from bench.soak_load import VICTIM_MODEL, records, submit
from bench.soak_proxy import Proxy

CYCLE_SECONDS = 120.0
OUTAGE_TAIL = 5.0  # seconds after a restore in which clients may still see the outage


@dataclass
class Window:
    kind: str
    start: float
    end: float

    def covers(self, at: float) -> bool:
        return self.start <= at <= self.end + OUTAGE_TAIL


@dataclass
class Recovery:
    seconds: float | None  # SIGKILL → the job running again under a new dispatch; None: never
    orphan_fit_alive: bool  # the dead worker's fit child was still running after the kill


@dataclass
class Stall:
    released_after: float | None  # seconds until the api closed the stalled upload


@dataclass
class Fleet:
    """The worker processes; a killed one is replaced at once, as an orchestrator would."""

    env: dict[str, str]
    logdir: Path
    workers: list[Process] = field(default_factory=list)
    started: int = 0
    killed: set[str] = field(default_factory=set)  # by the injector
    exited: dict[str, str] = field(default_factory=dict)  # on their own: name → when, how

    def start(self) -> Process:
        self.started += 1
        env = {**self.env, "SERVICE_WORKER_ID": f"soak-worker-{self.started}"}
        argv = [sys.executable, "-m", "service", "worker"]
        worker = Process(f"worker-{self.started}", argv, env, self.logdir)
        self.workers.append(worker)
        return worker

    def alive(self) -> list[Process]:
        return [w for w in self.workers if w.alive()]

    def kill(self, worker: Process) -> None:
        self.killed.add(worker.name)
        worker.popen.send_signal(signal.SIGKILL)
        worker.popen.wait()
        self.start()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restarts a worker that exited on its own (as compose's `restart: unless-stopped`
        would), and notes it: a worker should ride out a dependency outage."""
        while not stop.is_set():
            for worker in list(self.workers):
                if worker.alive() or worker.name in self.killed or worker.name in self.exited:
                    continue
                code = worker.popen.returncode
                self.exited[worker.name] = f"{worker.name} exited {code} at {time.time():.0f}"
                print(
                    f"soak: {worker.name} exited on its own ({code}); starting another", flush=True
                )
                self.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def owner_of(self, pid: int) -> Process | None:
        """The worker among `pid`'s ancestors (a fit runs in a forkserver's child)."""
        ours = {w.pid: w for w in self.alive()}
        while pid > 1:
            if pid in ours:
                return ours[pid]
            pid = _parent(pid)
        return None


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rpartition(")")[2].split()[1])


@dataclass
class Injector:
    fleet: Fleet
    redis: Proxy
    postgres: Proxy
    db_url: str  # direct (not through the proxy): the injector's own view of the jobs
    client_url: str
    windows: list[Window] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def run(self, client: httpx2.AsyncClient, stop: asyncio.Event, start: float) -> None:
        schedule = [
            (15.0, self.kill_worker),
            (45.0, self.cut_redis),
            (70.0, self.cut_postgres),
            (95.0, self.stall_client),
        ]
        cycle = 0
        while not stop.is_set():
            for offset, fault in schedule:
                at = start + cycle * CYCLE_SECONDS + offset
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, at - time.monotonic()))
                if stop.is_set():
                    return
                try:
                    await fault(client)
                except Exception as exc:  # a fault that could not be injected is reported
                    print(f"soak: {fault.__name__} failed: {exc!r}", flush=True)
                    self.errors.append(f"{fault.__name__}: {exc!r}")
            cycle += 1

    async def cut_redis(self, _: httpx2.AsyncClient) -> None:
        await self._outage("redis cut", self.redis, 8.0)

    async def cut_postgres(self, _: httpx2.AsyncClient) -> None:
        await self._outage("postgres cut", self.postgres, 6.0)

    async def _outage(self, kind: str, proxy: Proxy, seconds: float) -> None:
        print(f"soak: {kind} for {seconds:g} s", flush=True)
        start = time.time()
        await proxy.cut()
        await asyncio.sleep(seconds)
        await proxy.restore()
        self.windows.append(Window(kind, start, time.time()))

    async def kill_worker(self, client: httpx2.AsyncClient) -> None:
        """SIGKILL the worker running a long fit; time until another worker runs it again."""
        job_id = await submit(client, VICTIM_MODEL, "train", records(6000, 7))
        conn = await asyncpg.connect(self.db_url)
        try:
            row = await _wait_row(conn, job_id, "child_pid IS NOT NULL", 60.0)
            if row is None:
                print("soak: the victim job never started a fit; no kill", flush=True)
                return
            owner = self.fleet.owner_of(row["child_pid"])
            if owner is None:
                print("soak: no worker owns the victim's fit; no kill", flush=True)
                return
            print(f"soak: SIGKILL {owner.name} (pid {owner.pid}) running {job_id}", flush=True)
            killed = time.monotonic()
            self.fleet.kill(owner)
            await asyncio.sleep(1.0)
            orphan = _alive(row["child_pid"])
            if orphan:  # a fit that outlived its worker: stop it, it can never be recorded
                with contextlib.suppress(OSError):
                    os.kill(row["child_pid"], signal.SIGKILL)
            again = f"status = 'running' AND dispatches > {row['dispatches']}"
            rerun = await _wait_row(conn, job_id, again, 120.0)
            seconds = None if rerun is None else time.monotonic() - killed
            self.recoveries.append(Recovery(seconds, orphan))
            print(f"soak: killed worker's job running again after {seconds} s", flush=True)
        finally:
            await conn.close()

    async def stall_client(self, _: httpx2.AsyncClient) -> None:
        """A CSV upload that sends its headers and a line, then nothing: when is it cut off?"""
        host, port = self.client_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /datasets?name=soak-stalled HTTP/1.1\r\nHost: soak\r\n"
            b"Content-Type: text/csv\r\nContent-Length: 10000000\r\n\r\na,b\n1,2\n"
        )
        await writer.drain()
        print("soak: stalled an upload", flush=True)
        start = time.monotonic()
        released: float | None = None
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(120.0):
                while await reader.read(65536):
                    pass
                released = time.monotonic() - start
        writer.close()
        self.stalls.append(Stall(released))
        print(f"soak: stalled upload released after {released} s", flush=True)

    async def sample_rss(self, processes: dict[str, Process], stop: asyncio.Event) -> None:
        """RSS of the api and every worker (by name, so a replacement is its own series)."""
        while not stop.is_set():
            for proc in [*processes.values(), *self.fleet.alive()]:
                with contextlib.suppress(OSError, RuntimeError):
                    self.rss.setdefault(proc.name, []).append((time.time(), rss_bytes(proc.pid)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


async def _wait_row(
    conn: asyncpg.Connection, job_id: str, condition: str, within: float
) -> asyncpg.Record | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = await conn.fetchrow(
            f"SELECT child_pid, dispatches, status FROM jobs WHERE id = $1 AND {condition}",
            job_id,
        )
        if row is not None:
            return row
        await asyncio.sleep(0.1)
    return None


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
