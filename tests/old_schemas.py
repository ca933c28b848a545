"""Databases at an older schema, and rows copied into them, for the upgrade tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from service.repositories.migrator import MIGRATIONS_DIR, migrate
from tests.factories import Servers, drop_database, with_database


@asynccontextmanager
async def database_before(servers: Servers, tmp_path: Path, migration: str) -> AsyncIterator[str]:
    """A new database migrated up to, but not including, `migration` (a file name); dropped
    afterwards."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name >= migration:
            break
        shutil.copy(path, folder / path.name)
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(servers.postgres)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(servers.postgres, name)
    try:
        assert migration.removesuffix(".sql") not in await migrate(url, folder)
        yield url
    finally:
        await drop_database(servers.postgres, name)


async def copy_table(source: asyncpg.Connection, target: asyncpg.Connection, table: str) -> int:
    """Copies `table`'s rows in the columns the target has (its older schema); rows copied."""
    columns = [
        r["column_name"]
        for r in await target.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = $1"
            " AND is_generated = 'NEVER' ORDER BY ordinal_position",
            table,
        )
    ]
    quoted = ", ".join(f'"{c}"' for c in columns)
    rows = await source.fetch(f"SELECT {quoted} FROM {table}")
    await target.copy_records_to_table(table, records=rows, columns=columns)
    return len(rows)
