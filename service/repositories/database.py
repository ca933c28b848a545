"""The PostgreSQL handle: a lazily connecting asyncpg pool that turns outages into `Unavailable`.

The pool starts with no connections, so the api starts (and `/livez` answers) while PostgreSQL
is down, and the first request after it returns simply connects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import msgspec

from service.domain.errors import Conflict, QueryTimeout, Unavailable
from service.domain.job_errors import GiveUp
from service.settings import DatabaseSettings

Connection = asyncpg.Connection  # re-exported so callers need not import the driver
Record = asyncpg.Record

# Errors that mean "the database is not reachable right now", as opposed to a bad query.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON columns decode with msgspec, to plain Python values."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_encode, decoder=msgspec.json.decode, schema="pg_catalog"
        )


def _json_encode(value: object) -> str:
    return msgspec.json.encode(value).decode()


@contextmanager
def refused_queries() -> Iterator[None]:
    """A query PostgreSQL refuses (a statement timeout on a very selective filter, say) fails
    the job with its message; losing the database is still an infrastructure error (retried)."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if isinstance(exc, OUTAGE_ERRORS):
            raise
        raise GiveUp("DatabaseError", f"PostgreSQL refused the dataset query: {exc}") from None


class Database:
    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.settings.url,
            min_size=0,
            max_size=self.settings.pool_max,
            timeout=self.settings.connect_timeout,
            server_settings={
                "statement_timeout": str(self.settings.statement_timeout_ms),
                "lock_timeout": str(self.settings.lock_timeout_ms),
            },
            init=init_connection,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.wait_for(self._pool.close(), timeout=5)
            self._pool = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise Unavailable("postgres")
        try:
            async with self._pool.acquire(timeout=self.settings.connect_timeout) as conn:
                yield conn
        except asyncpg.QueryCanceledError as exc:  # database.statement_timeout_ms
            raise QueryTimeout() from exc
        except asyncpg.LockNotAvailableError as exc:  # database.lock_timeout_ms
            raise Conflict("the resource is busy with another request; retry") from exc
        except OUTAGE_ERRORS as exc:
            raise Unavailable("postgres") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only transaction whose statements all see one snapshot (a count and the rows
        it counts agree; a job reads a dataset as it was at one instant)."""
        async with (
            self.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn
