"""Forward-only SQL migrations: `migrations/NNNN_name.sql`, each applied once, in order.

A session advisory lock serialises concurrent runners (several replicas starting at once);
a checksum per file refuses to run when a file was edited after it was applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from service.repositories.database import Database

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
LOCK_KEY = 0x6D6F64656C73  # "models"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migrations folder or the database's record of it is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        if not _NAME.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(path.stem, path.read_text()))
    numbers = [m.version[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError("two migration files share a number")
    return found


async def migrate(
    url: str, folder: Path = MIGRATIONS_DIR, *, default_tenant: str = "default"
) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call. Rows stored before
    tenants existed move to `default_tenant` (`auth.default_tenant`)."""
    migrations = discover(folder)
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("SELECT set_config('app.default_tenant', $1, false)", default_tenant)
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            return await _apply_pending(conn, migrations)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(_CREATE_TABLE)
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    done = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise MigrationError(f"{migration.version}.sql was edited after it was applied")
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
        log.info("applied migration", extra={"migration": migration.version})
        done.append(migration.version)
    return done


async def count_missing(conn: asyncpg.Connection, expected: list[str]) -> int:
    """How many of the expected versions are not applied yet (used by `/readyz`)."""
    if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return len(expected)
    applied = await conn.fetchval(
        "SELECT count(*) FROM schema_migrations WHERE version = any($1::text[])", expected
    )
    return len(expected) - int(applied)


async def pending_migrations(db: Database, expected: list[str]) -> int:
    """`count_missing` over a pooled connection: the readiness probe's database check."""
    async with db.connection() as conn:
        return await count_missing(conn, expected)
