"""Migrations: each file applies once even with concurrent runners; an edited, failing or badly
named file is refused; the repository's own migrations are well formed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from service.repositories.migrator import MigrationError, count_missing, discover, migrate

pytestmark = pytest.mark.anyio


def _write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql)


async def test_concurrent_runners_apply_each_file_once(database_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_counter.sql", "CREATE TABLE applied (file text);")
    # A slow migration widens the window in which the other runners would race.
    _write(tmp_path, "0002_slow.sql", "SELECT pg_sleep(0.3); INSERT INTO applied VALUES ('0002');")
    _write(tmp_path, "0003_more.sql", "INSERT INTO applied VALUES ('0003');")
    results = await asyncio.gather(*(migrate(database_url, tmp_path) for _ in range(6)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 0, 3]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM applied") == 2
        versions = await conn.fetch(
            "SELECT version FROM schema_migrations WHERE version LIKE '000_\\_%' ESCAPE '\\'"
            " AND version IN ('0001_counter', '0002_slow', '0003_more') ORDER BY 1"
        )
        assert [r["version"] for r in versions] == ["0001_counter", "0002_slow", "0003_more"]
        assert await count_missing(conn, [m.version for m in discover(tmp_path)]) == 0
    finally:
        await conn.close()


async def test_edited_file_is_refused(database_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (x int);")
    await migrate(database_url, tmp_path)
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (x bigint);")
    with pytest.raises(MigrationError, match="edited"):
        await migrate(database_url, tmp_path)


async def test_failed_file_rolls_back_alone(database_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (x int);")
    _write(tmp_path, "0002_bad.sql", "CREATE TABLE half (x int); SELECT no_such_function();")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(database_url, tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('ok') IS NOT NULL")
        assert not await conn.fetchval("SELECT to_regclass('half') IS NOT NULL")
        assert await count_missing(conn, ["0001_ok", "0002_bad"]) == 1
    finally:
        await conn.close()


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "init.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        discover(tmp_path)


def test_repository_migrations_are_well_formed() -> None:
    assert [m.version[:4] for m in discover()] == sorted(m.version[:4] for m in discover())
