"""The PostgreSQL handle: a lazily connecting asyncpg pool that turns outages into `Unavailable`.

The pool starts with no connections, so the api starts (and `/livez` answers) while PostgreSQL
is down, and the first request after it returns simply connects.

Every connection runs as `database.role` (never a superuser: they bypass row-level security),
and every transaction opened for an actor (see `domain/actors.py`) first sets `app.tenant`,
`app.actor` and `app.request_id` for itself alone (`set_config(..., true)`, i.e. `SET LOCAL`):
the tables' policies show it that tenant's rows only, and what it writes is that tenant's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg
import msgspec

from service.domain.actors import Actor, current_actor
from service.domain.errors import Conflict, QueryTimeout, Unavailable
from service.domain.job_errors import GiveUp
from service.settings import DatabaseSettings

log = logging.getLogger(__name__)

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


MAINTENANCE_ROLE = "models_maintenance"
_ACT_AS = (
    "SELECT set_config('app.tenant', $1, true), set_config('app.actor', $2, true),"
    " set_config('app.request_id', $3, true)"
)


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON columns decode with msgspec, to plain Python values."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_encode, decoder=msgspec.json.decode, schema="pg_catalog"
        )


class RowSecurityBypassed(PermissionError):
    """The service's role is a superuser or has BYPASSRLS: tenants would not be kept apart, so
    the connection is refused (an outage to callers, a log line to operators)."""


def connection_setup(role: str) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """`init_connection`, then `SET ROLE`: a session-level setting that outlives the pool's
    `RESET ALL` between uses (PostgreSQL leaves `role` out of it). A role above row-level
    security is refused."""

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if role:
            await conn.execute(f"SET ROLE {quote_ident(role)}")
        above, name, login_above, login = await conn.fetchrow(_ABOVE_ROW_SECURITY)
        if login_above and not _warned:
            _warn_login(login)
        if above:
            log.error(
                "refusing to serve as a role that bypasses row-level security; set"
                " database.role to a role without SUPERUSER and BYPASSRLS",
                extra={"role": name},
            )
            raise RowSecurityBypassed(f"database role {name!r} bypasses row-level security")

    return init


_ABOVE_ROW_SECURITY = """
    SELECT r.rolsuper OR r.rolbypassrls, r.rolname, l.rolsuper OR l.rolbypassrls, l.rolname
    FROM pg_roles r, pg_roles l WHERE r.rolname = current_user AND l.rolname = session_user
"""
_warned = False


def _warn_login(login: str) -> None:
    """Fine for development; in production a statement that ran `RESET ROLE` would be back
    above row-level security, so the login role should be a plain member of the service role."""
    global _warned
    _warned = True
    log.warning(
        "the database login role is above row-level security; every statement runs as"
        " database.role, but log in as a plain member of it in production (see README)",
        extra={"login_role": login},
    )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
            init=connection_setup(self.settings.role),
        )

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.wait_for(self._pool.close(), timeout=5)
            self._pool = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """For the current actor: a transaction that sees its tenant. With no actor, a plain
        connection that sees no tenant's rows (the type catalogue, readiness)."""
        actor = current_actor()
        if actor is None:
            async with self._acquired() as conn:
                yield conn
        else:
            async with self._acquired() as conn, conn.transaction():
                await _act_as(conn, actor)
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._acquired() as conn, conn.transaction():
            if (actor := current_actor()) is not None:
                await _act_as(conn, actor)
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A read-only transaction whose statements all see one snapshot (a count and the rows
        it counts agree; a job reads a dataset as it was at one instant)."""
        async with (
            self._acquired() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            if (actor := current_actor()) is not None:
                await _act_as(conn, actor)
            yield conn

    @asynccontextmanager
    async def maintenance(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as `models_maintenance`: the sweeper's and retention's view across
        tenants, limited by its grants to the job bookkeeping they do."""
        async with self._acquired() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {MAINTENANCE_ROLE}")
            yield conn

    @asynccontextmanager
    async def _acquired(self) -> AsyncIterator[asyncpg.Connection]:
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


async def _act_as(conn: asyncpg.Connection, actor: Actor) -> None:
    await conn.execute(_ACT_AS, actor.tenant, actor.sub, actor.request_id)
