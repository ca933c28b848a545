"""What PostgreSQL does for an api: the CPU its backends spend, and its transaction count.

`CpuMeter` sums the CPU time (user + system, from /proc) of the api process and of every
PostgreSQL backend connected to its database: a request's cost in CPU, which contention from
other processes on the machine leaves alone far better than it does throughput or latency.

`untouched(...)` proves that cached predictions do not touch PostgreSQL. It reads
`xact_commit + xact_rollback` of the api's database from `pg_stat_database` (through the
maintenance database, so the reads are not counted) before and after a burst of cached
predictions, and checks in `pg_stat_activity` that no pooled connection ran a statement
meanwhile. Two things also count there and are kept out of the window: the api's change
listener runs a keepalive `SELECT 1` every KEEPALIVE s on its own connection (the burst starts
right after one and ends before the next), and a backend reports its counts at most 1 s after
going idle, or 10 s when it reported less than 1 s before (so the burst waits for that first).
A positive control, one `GET /models/iris` after the burst, shows that the counter sees the
api's reads.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx2

from bench.load import load

STATS_FLUSH = 1.5  # s: a backend reports its transaction counts at most 1 s after going idle
KEEPALIVE = 10.0  # s: service/serving/registry.py KEEPALIVE_SECONDS
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class CpuMeter:
    """CPU of an api and of its database's backends between `start()` and `stop()`."""

    conn: asyncpg.Connection  # to the maintenance database
    db_name: str
    api_pid: int
    before: dict[int, float] = field(default_factory=dict)

    async def _pids(self) -> list[int]:
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.db_name
        )
        return [self.api_pid, *(r["pid"] for r in rows)]

    async def start(self) -> None:
        self.before = {pid: cpu_seconds(pid) for pid in await self._pids()}

    async def stop(self) -> float:
        """CPU seconds spent since `start()` (a backend that started meanwhile, all of it)."""
        return sum(cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in await self._pids())


async def _xacts(conn: asyncpg.Connection, db_name: str) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    value = await conn.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", db_name
    )
    return int(value)


async def _backends(conn: asyncpg.Connection, db_name: str) -> dict[int, tuple[object, str]]:
    """Every client backend of the database: pid → (last statement's start, its text)."""
    rows = await conn.fetch(
        "SELECT pid, query_start, query FROM pg_stat_activity"
        " WHERE datname = $1 AND backend_type = 'client backend'",
        db_name,
    )
    return {r["pid"]: (r["query_start"], r["query"] or "") for r in rows}


def _listener(backends: dict[int, tuple[object, str]]) -> int:
    found = [
        pid
        for pid, (_, query) in backends.items()
        if query.strip() == "SELECT 1" or query.upper().startswith("LISTEN")
    ]
    if len(found) != 1:
        raise RuntimeError(f"cannot tell the change listener's connection apart: {backends}")
    return found[0]


async def _after_keepalive(conn: asyncpg.Connection, db_name: str) -> int:
    """Wait for the listener's next keepalive; its pid. The next one is KEEPALIVE s away."""
    pid = _listener(await _backends(conn, db_name))
    start = (await _backends(conn, db_name))[pid][0]
    deadline = time.monotonic() + KEEPALIVE + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        if (await _backends(conn, db_name))[pid][0] != start:
            return pid
    raise RuntimeError("the change listener ran no keepalive")


@dataclass
class Untouched:
    predictions: int
    delta: int  # transactions in the database during the predictions
    pool_statements: int  # pooled connections that ran a statement meanwhile
    control: int  # transactions of one GET /models/iris, the positive control

    @property
    def ok(self) -> bool:
        return self.delta == 0 and self.pool_statements == 0 and self.control > 0


async def untouched(admin_url: str, db_name: str, url: str, body: bytes) -> Untouched:
    """Predictions between two keepalives; the transactions the database counted meanwhile."""
    await asyncio.sleep(KEEPALIVE + STATS_FLUSH)  # a busy backend may hold its counts 10 s
    conn = await asyncpg.connect(admin_url)  # the maintenance database: not counted
    try:
        for _ in range(3):  # a keepalive inside the window: try again
            listener = await _after_keepalive(conn, db_name)
            ticked = time.monotonic()
            await asyncio.sleep(STATS_FLUSH)
            before, backends = await _xacts(conn, db_name), await _backends(conn, db_name)
            done = 0
            for c in (1, 64):
                r = await load(f"{url}/models/iris/predict", connections=c, seconds=1, body=body)
                if r.errors:
                    raise RuntimeError(f"{r.errors} failed predictions")
                done += r.requests
            await asyncio.sleep(STATS_FLUSH)
            after, later = await _xacts(conn, db_name), await _backends(conn, db_name)
            busy = sum(
                1
                for pid, (start, _) in later.items()
                if pid != listener and backends.get(pid, (None, ""))[0] != start
            )
            async with httpx2.AsyncClient(base_url=url) as client:
                if (await client.get("/models/iris")).status_code != 200:
                    raise RuntimeError("GET /models/iris failed")
            await asyncio.sleep(STATS_FLUSH)
            control = await _xacts(conn, db_name) - after
            last = (await _backends(conn, db_name))[listener][0]
            if last == backends[listener][0] and time.monotonic() - ticked < KEEPALIVE - 0.5:
                return Untouched(done, after - before, busy, control)
    finally:
        await conn.close()
    raise RuntimeError("no window between two keepalives of the change listener")
