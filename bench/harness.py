"""Start and stop the service for one bench run.

`running_service(**settings)` finds PostgreSQL and Redis (the configured local ones when they
answer, else embedded ones under a temp dir), creates and migrates a fresh database
`bench_<random>`, launches `python -m service api` and `python -m service worker` as
subprocesses on a free port with a unique Redis queue and a fresh HMAC key, waits for `/readyz`,
and on exit stops both processes, drops the database, deletes the queue's Redis keys and stops
any embedded server it started. The load generator lives in `bench/load.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import redis as sync_redis

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


@dataclass
class Servers:
    postgres: str  # the maintenance database's DSN
    redis: str
    embedded: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for server in self.embedded:
            server.stop()


def find_servers(tmp: Path) -> Servers:
    """The local PostgreSQL and Redis when they answer, else embedded ones under `tmp`."""
    from service.devtools.postgres import start_postgres
    from service.devtools.redis import start_redis
    from service.devtools.supervision import answers

    servers = Servers(POSTGRES_ADMIN, REDIS_URL)
    if not answers(servers.postgres):
        servers.embedded.append(start_postgres(tmp))
        servers.postgres = with_database(servers.embedded[-1].url, "postgres")
    if not answers(servers.redis):
        servers.embedded.append(start_redis(tmp))
        servers.redis = servers.embedded[-1].url
    return servers


class Process:
    """A child process whose output goes to a log file in the run's temp dir."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        logdir: Path,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def service_env(base: Mapping[str, str], overrides: Mapping[str, object]) -> dict[str, str]:
    """The current environment without SERVICE__ variables, plus the run's settings.

    `overrides` keys are `section__key` (e.g. `models__cache_bytes`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.pop("SERVICE_CONFIG", None)
    env.update(base)
    env.update({f"SERVICE__{k.upper()}": str(v) for k, v in overrides.items()})
    return env


@dataclass
class Service:
    """A running api (and worker) for one bench run."""

    url: str  # http://127.0.0.1:PORT
    database_url: str
    api: Process
    worker: Process | None
    logdir: Path
    env: dict[str, str]

    def client(self, timeout: float = 120.0) -> httpx2.AsyncClient:
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        return httpx2.AsyncClient(base_url=self.url, timeout=timeout, limits=limits)


async def create_database(admin_url: str, name: str) -> str:
    """Create and migrate database `name`; returns its DSN."""
    from service.repositories.migrator import migrate

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(admin_url, name)
    await migrate(url)
    return url


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def delete_queue_keys(redis_url: str, queue: str) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def wait_ready(url: str, processes: list[Process], within: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + within
    async with httpx2.AsyncClient(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            for process in processes:
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            with contextlib.suppress(httpx2.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}/readyz not 200 within {within:.0f} s:\n{processes[0].tail()}")


@contextlib.contextmanager
def _servers_and_tmp() -> Iterator[tuple[Servers, Path]]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        servers = find_servers(Path(tmp))
        try:
            yield servers, Path(tmp)
        finally:
            servers.stop()


@contextlib.asynccontextmanager
async def running_service(
    *,
    worker: bool = True,
    profiled: Path | None = None,
    tree: Path = ROOT,
    **settings: object,
) -> AsyncIterator[Service]:
    """The api (and a worker) on a fresh database; settings are `section__key=value`.

    `tree`: the source tree whose code the processes run (another commit's, `bench/overhead.py`);
    the database is migrated by this tree's migrations, so it must have the same ones.

    `profiled`: the api runs under `bench.profiled_api`, which profiles its event loop between
    SIGUSR1 and SIGUSR2 and writes the statistics to that path (`python -m bench profile`)."""
    with _servers_and_tmp() as (servers, tmp):
        db_name = f"bench_{secrets.token_hex(6)}"
        queue = f"bench:{secrets.token_hex(6)}"
        started: list[Process] = []
        try:
            db_url = await create_database(servers.postgres, db_name)
            env = _env(servers, db_url, queue, settings)
            if tree != ROOT:
                env["PYTHONPATH"] = str(tree)
            entry = ["service"] if profiled is None else ["bench.profiled_api", str(profiled)]
            api = Process("api", [sys.executable, "-m", *entry, "api"], env, tmp, tree)
            started.append(api)
            wk = None
            if worker:
                argv = [sys.executable, "-m", "service", "worker"]
                wk = Process("worker", argv, env, tmp, tree)
                started.append(wk)
            url = f"http://127.0.0.1:{env['SERVICE__HTTP__BIND'].rpartition(':')[2]}"
            await wait_ready(url, started)
            yield Service(url, db_url, api, wk, tmp, env)
        finally:
            for process in reversed(started):
                process.stop()
            await drop_database(servers.postgres, db_name)
            delete_queue_keys(servers.redis, queue)


def _env(
    servers: Servers, db_url: str, queue: str, settings: Mapping[str, object]
) -> dict[str, str]:
    base = {
        "SERVICE__HTTP__BIND": f"127.0.0.1:{free_port()}",
        "SERVICE__DATABASE__URL": db_url,
        "SERVICE__REDIS__URL": servers.redis,
        "SERVICE__REDIS__QUEUE_NAME": queue,
        "SERVICE__ARTIFACTS__HMAC_KEY": secrets.token_hex(32),
        "SERVICE__AUTH__MODE": "disabled",
        "SERVICE__LOGGING__LEVEL": "WARNING",
        "SERVICE__WORKER__METRICS_PORT": "0",
        "SERVICE_WORKER_ID": f"bench-{queue}",
    }
    return service_env(base, settings)


@contextlib.contextmanager
def hello_server() -> Iterator[str]:
    """The framework floor: bench/hello.py on one Hypercorn process; yields its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-hello-") as tmp:
        argv = [sys.executable, "-m", "bench.hello", f"127.0.0.1:{port}"]
        process = Process("hello", argv, dict(os.environ), Path(tmp))
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while not _answers(port):
                if not process.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"hello app did not start:\n{process.tail()}")
                time.sleep(0.05)
            yield url
        finally:
            process.stop()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
