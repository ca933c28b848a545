"""Embedded PostgreSQL really starts, answers over TCP as superuser, stops, and reuses its data."""

from __future__ import annotations

import asyncio
import os
import subprocess
from importlib.util import find_spec
from pathlib import Path

import asyncpg
import pytest

from service.devtools.postgres import start_postgres
from service.devtools.supervision import answers

pytestmark = pytest.mark.skipif(
    find_spec("pgserver") is None,
    reason="needs the dev extra (make install)",
)


async def _query(url: str, *statements: str) -> list[object]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return [await connection.fetchval(statement) for statement in statements]
    finally:
        await connection.close()


def test_postgres_accepts_tcp_as_superuser_then_stops(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    try:
        assert server.url.startswith("postgresql://postgres@127.0.0.1:")
        assert server.url.endswith("/postgres")
        assert answers(server.url)
        results = asyncio.run(_query(server.url, "select 1", "create database x"))
        assert results[0] == 1
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not answers(server.url)


def test_postgres_second_start_reuses_data_dir(tmp_path: Path) -> None:
    first = start_postgres(tmp_path)
    try:
        asyncio.run(_query(first.url, "create database kept"))
    finally:
        first.stop()
    pg_version = (tmp_path / "postgres" / "PG_VERSION").stat()

    second = start_postgres(tmp_path)
    try:
        found = asyncio.run(
            _query(second.url, "select count(*) from pg_database where datname = 'kept'")
        )
        assert found == [1]
    finally:
        second.stop()
    assert (tmp_path / "postgres" / "PG_VERSION").stat().st_ino == pg_version.st_ino


def test_postgres_starts_despite_stale_pid_file(tmp_path: Path) -> None:
    start_postgres(tmp_path).stop()
    data = tmp_path / "postgres"
    # As after a crash in a container, where pids restart: the recorded pid is alive and owned
    # by the PostgreSQL account, but it is not PostgreSQL. PostgreSQL alone would refuse.
    owner = data.stat().st_uid
    run_as = {"user": owner} if os.geteuid() == 0 else {}
    unrelated = subprocess.Popen(["sleep", "60"], **run_as)  # type: ignore[call-overload]
    try:
        stale = f"{unrelated.pid}\n{data}\n0\n5432\n{data}\n127.0.0.1\n  0 0\nready   \n"
        (data / "postmaster.pid").write_text(stale)
        server = start_postgres(tmp_path)
        try:
            assert answers(server.url)
        finally:
            server.stop()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_postgres_starts_under_a_long_root(tmp_path: Path) -> None:
    root = tmp_path / ("long-directory-name-" * 5)  # socket path there would exceed 107 bytes
    before = set(Path("/tmp").glob("pg-*"))
    server = start_postgres(root)
    try:
        assert asyncio.run(_query(server.url, "select 1")) == [1]
    finally:
        server.stop()
    assert set(Path("/tmp").glob("pg-*")) - before == set()  # fallback socket dir removed


def test_postgres_starts_under_a_private_directory(tmp_path: Path) -> None:
    # What pytest does to /tmp/pytest-of-root whenever a session starts, and what /root is.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = start_postgres(private / "root")
    try:
        assert asyncio.run(_query(server.url, "select 1")) == [1]
    finally:
        server.stop()
    assert private.stat().st_mode & 0o777 == 0o700


def test_postgres_refuses_a_data_dir_in_use(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            start_postgres(tmp_path)
        assert answers(server.url)
    finally:
        server.stop()
