"""Test fixtures: real PostgreSQL and Redis (embedded ones when none answer), a fresh database
per test cloned from a migrated template, a separate arq queue per test, an in-process client
and an in-process burst worker."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx2
import pytest
import redis as sync_redis
from asgi_lifespan import LifespanManager

from service.http.app import create_app
from service.repositories.database import Database
from service.repositories.migrator import migrate
from service.settings import Settings
from tests.factories import (
    HMAC_KEY,
    AppClient,
    ClientFactory,
    Servers,
    Worker,
    burst_worker,
    drop_database,
    make_settings,
    with_database,
)

pytest_plugins = ["pytester", "tests.no_skips"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The configured servers when they answer, else embedded ones for this session."""
    from service.devtools.postgres import start_postgres
    from service.devtools.redis import start_redis
    from service.devtools.supervision import answers

    pg = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    rd = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    started = []
    root = tmp_path_factory.mktemp("servers")  # per session, so overlapping runs don't clash
    if not answers(pg):
        started.append(start_postgres(root))
        pg = started[-1].url
    if not answers(rd):
        started.append(start_redis(root))
        rd = started[-1].url
    try:
        yield Servers(pg, rd)
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def template_db(servers: Servers) -> Iterator[str]:
    """A migrated database that every test clones; unique per session so runs can overlap."""
    name = f"tmpl_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(servers.postgres)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        await migrate(with_database(servers.postgres, name))

    asyncio.run(create())
    yield name
    asyncio.run(drop_database(servers.postgres, name))


@pytest.fixture
async def database_url(servers: Servers, template_db: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(servers.postgres)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield with_database(servers.postgres, name)
    await drop_database(servers.postgres, name)


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = f"test:{uuid.uuid4().hex[:12]}"
    yield name


@pytest.fixture
def redis_cleanup(servers: Servers, queue_name: str) -> Iterator[None]:
    yield
    client = sync_redis.Redis.from_url(servers.redis)
    try:
        # arq's per-job keys (`arq:job:<uuid>`, ...) expire by themselves; the queue is ours.
        keys = list(client.scan_iter(match=f"{queue_name}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def settings(database_url: str, servers: Servers, queue_name: str, redis_cleanup: None) -> Settings:
    """Per-test settings: its own database and queue; auth is off unless a test turns it on."""
    return make_settings(
        database={"url": database_url, "connect_timeout": 1.0},
        redis={"url": servers.redis, "queue_name": queue_name},
        auth={"mode": "disabled"},
        artifacts={"hmac_key": HMAC_KEY},
        worker={"metrics_port": 0, "heartbeat_seconds": 1, "eval_min_rows": 20},
        logging={"format": "text"},
    )


@pytest.fixture
async def client_factory(database_url: str) -> AsyncIterator[ClientFactory]:
    """Builds in-process clients for given settings; each app's lifespan runs and ends.

    It depends on `database_url` so that apps stop before their database is dropped."""
    managers: list[LifespanManager] = []
    clients: list[AppClient] = []

    async def build(settings: Settings) -> AppClient:
        manager = LifespanManager(create_app(settings), startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        managers.append(manager)
        client = AppClient(
            transport=httpx2.ASGITransport(app=manager.app), base_url="http://testserver"
        )
        client.services = manager._state["services"]
        client.app = manager.app
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)


@pytest.fixture
async def client(client_factory: ClientFactory, settings: Settings) -> AppClient:
    return await client_factory(settings)


@pytest.fixture
def run_worker(settings: Settings) -> Worker:
    """Runs an in-process burst worker until the test's queue is empty."""
    return burst_worker(settings)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    """The service's own pool on the test's database, for calling use cases directly."""
    database = Database(settings.database)
    await database.start()
    yield database
    await database.close()


@pytest.fixture
async def raw(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection, without the service's codecs: it sees stored JSON as text. It is
    the database owner's, above row-level security; rows it inserts go to the default tenant."""
    conn = await asyncpg.connect(database_url)
    await conn.execute("SET app.tenant = 'default'")
    yield conn
    await conn.close()
