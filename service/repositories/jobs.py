"""The `jobs` table."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from service.domain.errors import Conflict
from service.query import Column, ColumnType, Source
from service.repositories.database import Connection
from service.schemas.jobs import JobOut

ACTIVE = ("queued", "running")

_OUT = """
    id, model_name AS model, kind, status, created_by, created_at, started_at, finished_at,
    attempts, progress, error, result
"""

SOURCE = Source(
    from_sql="jobs",
    columns=[
        Column("id", ColumnType.UUID),
        Column("model", ColumnType.TEXT, sql='"model_name"'),
        Column("kind", ColumnType.TEXT),
        Column("status", ColumnType.TEXT),
        Column("created_by", ColumnType.TEXT),
        Column("created_at", ColumnType.TIMESTAMP),
        Column("started_at", ColumnType.TIMESTAMP),
        Column("finished_at", ColumnType.TIMESTAMP),
        Column("attempts", ColumnType.INTEGER),
        Column("progress", ColumnType.FLOAT),
        Column("error", ColumnType.JSON),
        Column("result", ColumnType.JSON),
    ],
    tiebreak=["created_at", "id"],
)


class JobRow(msgspec.Struct, kw_only=True):
    """A job as the worker sees it: the public fields plus what it needs to run it."""

    id: uuid.UUID
    model_id: int
    model_name: str
    kind: str
    status: str
    spec: dict[str, Any]
    created_by: str
    attempts: int
    dispatches: int


class Dispatch(msgspec.Struct, frozen=True):
    id: uuid.UUID
    attempts: int
    dispatches: int


def to_out(row: asyncpg.Record | dict[str, Any]) -> JobOut:
    return msgspec.convert(dict(row), JobOut)


class JobRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert(
        self,
        job_id: uuid.UUID,
        model_id: int,
        model_name: str,
        kind: str,
        spec: dict[str, Any],
        created_by: str,
    ) -> JobOut:
        try:
            row = await self.conn.fetchrow(
                f"""
                INSERT INTO jobs (id, model_id, model_name, kind, status, spec, created_by)
                VALUES ($1, $2, $3, $4, 'queued', $5, $6)
                RETURNING {_OUT}
                """,
                job_id,
                model_id,
                model_name,
                kind,
                spec,
                created_by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"model '{model_name}' already has an active job") from exc
        return to_out(row)

    async def get(self, job_id: uuid.UUID) -> JobOut | None:
        row = await self.conn.fetchrow(f"SELECT {_OUT} FROM jobs WHERE id = $1", job_id)
        return None if row is None else to_out(row)

    async def get_row(self, job_id: uuid.UUID, *, lock: bool = False) -> JobRow | None:
        row = await self.conn.fetchrow(
            "SELECT id, model_id, model_name, kind, status, spec, created_by, attempts, dispatches"
            " FROM jobs WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            job_id,
        )
        return None if row is None else msgspec.convert(dict(row), JobRow)

    async def active_for_model(self, model_id: int) -> JobOut | None:
        row = await self.conn.fetchrow(
            f"SELECT {_OUT} FROM jobs WHERE model_id = $1 AND status = any($2::text[])",
            model_id,
            list(ACTIVE),
        )
        return None if row is None else to_out(row)

    async def cancel(self, job_id: uuid.UUID) -> JobOut | None:
        """Marks an active job cancelled; None when it had already finished."""
        row = await self.conn.fetchrow(
            f"""
            UPDATE jobs SET status = 'cancelled', finished_at = now()
            WHERE id = $1 AND status = any($2::text[])
            RETURNING {_OUT}
            """,
            job_id,
            list(ACTIVE),
        )
        return None if row is None else to_out(row)

    async def cancel_all_for_model(self, model_id: int) -> list[tuple[uuid.UUID, int]]:
        """Cancels the model's active jobs; returns their ids and dispatch numbers."""
        rows = await self.conn.fetch(
            """
            UPDATE jobs SET status = 'cancelled', finished_at = now()
            WHERE model_id = $1 AND status = any($2::text[])
            RETURNING id, dispatches
            """,
            model_id,
            list(ACTIVE),
        )
        return [(r["id"], r["dispatches"]) for r in rows]

    # -- the worker's transitions ------------------------------------------------------------

    async def claim(self, job_id: uuid.UUID, worker: str) -> JobRow | None:
        """`queued → running` for this worker; None when the job is no longer queued."""
        row = await self.conn.fetchrow(
            """
            UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $2,
                started_at = coalesce(started_at, now()), heartbeat_at = now(), progress = 0
            WHERE id = $1 AND status = 'queued'
            RETURNING id, model_id, model_name, kind, status, spec, created_by, attempts,
                dispatches
            """,
            job_id,
            worker,
        )
        return None if row is None else msgspec.convert(dict(row), JobRow)

    async def beat(self, job_id: uuid.UUID) -> bool:
        """Heartbeat; False when the job stopped being `running` (cancelled, deleted)."""
        alive = await self.conn.fetchval(
            "UPDATE jobs SET heartbeat_at = now() WHERE id = $1 AND status = 'running'"
            " RETURNING true",
            job_id,
        )
        return bool(alive)

    async def set_child(self, job_id: uuid.UUID, pid: int) -> None:
        await self.conn.execute("UPDATE jobs SET child_pid = $2 WHERE id = $1", job_id, pid)

    async def lock_if_running(self, job_id: uuid.UUID) -> bool:
        status = await self.conn.fetchval(
            "SELECT status FROM jobs WHERE id = $1 FOR UPDATE", job_id
        )
        return bool(status == "running")

    async def succeed(self, job_id: uuid.UUID, result: dict[str, Any]) -> None:
        await self.conn.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = now(), progress = 1,"
            " result = $2, error = NULL WHERE id = $1",
            job_id,
            result,
        )

    async def fail(self, job_ids: list[uuid.UUID], error_type: str, message: str) -> None:
        """`running → failed` with an error a client may read."""
        await self.conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = now(), error = $2"
            " WHERE id = any($1::uuid[]) AND status = 'running'",
            job_ids,
            {"type": error_type, "message": message[:2000]},
        )

    async def release(self, job_id: uuid.UUID) -> None:
        """`running → queued`, to be run again by arq's retry of the same dispatch."""
        await self.conn.execute(
            "UPDATE jobs SET status = 'queued', heartbeat_at = NULL, child_pid = NULL"
            " WHERE id = $1 AND status = 'running'",
            job_id,
        )

    # -- the sweeper's ---------------------------------------------------------------------

    async def lock_abandoned(self, stale_after_seconds: float) -> list[Dispatch]:
        """Running jobs whose heartbeat stopped; locked, skipping those another sweeper has."""
        rows = await self.conn.fetch(
            """
            SELECT id, attempts, dispatches FROM jobs
            WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
            FOR UPDATE SKIP LOCKED
            """,
            stale_after_seconds,
        )
        return [Dispatch(r["id"], r["attempts"], r["dispatches"]) for r in rows]

    async def redispatch(self, job_ids: list[uuid.UUID]) -> None:
        """Back to `queued` under a new dispatch number (a new arq job id)."""
        await self.conn.execute(
            "UPDATE jobs SET status = 'queued', heartbeat_at = NULL, child_pid = NULL,"
            " dispatches = dispatches + 1 WHERE id = any($1::uuid[])",
            job_ids,
        )

    async def queued_before(self, seconds: float, limit: int = 1000) -> list[Dispatch]:
        rows = await self.conn.fetch(
            "SELECT id, attempts, dispatches FROM jobs WHERE status = 'queued'"
            " AND created_at < now() - make_interval(secs => $1) LIMIT $2",
            seconds,
            limit,
        )
        return [Dispatch(r["id"], r["attempts"], r["dispatches"]) for r in rows]

    async def set_progress(self, job_id: uuid.UUID, fraction: float) -> None:
        await self.conn.execute(
            "UPDATE jobs SET progress = $2 WHERE id = $1 AND status = 'running'",
            job_id,
            fraction,
        )

    async def add_to_spec(self, job_id: uuid.UUID, values: dict[str, Any]) -> None:
        await self.conn.execute("UPDATE jobs SET spec = spec || $2 WHERE id = $1", job_id, values)
