"""The `jobs` table.

A job's `spec` is stored as the tagged Struct the domain planned (jsonb, `kind` inside) and read
back as one. Rows written before the spec carried its tag are read through `_SPEC`, which takes
the tag from the row's `kind` column, so a job queued before an upgrade still runs after it.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import asyncpg
import msgspec

from service.domain.actors import Actor
from service.domain.errors import Conflict
from service.domain.job_specs import ClaimedJob, JobOrigin, JobResult, JobSpec
from service.query import Column, ColumnType, Compiled, Query, Source, compile_query
from service.repositories.database import Connection
from service.repositories.listing import fetch_page
from service.schemas.jobs import JobError, JobKind, JobOut, JobStatus

ACTIVE: tuple[JobStatus, ...] = ("queued", "running")

_OUT = """
    id, model_name AS model, kind, status, created_by, tenant, created_at, started_at, finished_at,
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
        Column("tenant", ColumnType.TEXT),
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


_SPEC = "spec || jsonb_build_object('kind', kind) AS spec"
_CLAIMED = (
    f"id, model_id, model_name, kind, status, {_SPEC}, created_by, tenant, attempts, dispatches"
)


class JobFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Equality filters of a job list, beside its query."""

    model: str | None = None
    status: str | None = None
    kind: str | None = None


_FILTER_COLUMNS = {"model": "model_name", "status": "status", "kind": "kind"}


class JobState(msgspec.Struct, frozen=True):
    status: JobStatus
    dispatches: int


class Dispatch(msgspec.Struct, frozen=True):
    id: uuid.UUID
    attempts: int
    dispatches: int


class Backlog(msgspec.Struct, frozen=True):
    """Active jobs of one kind, across tenants, as the worker's metrics show them."""

    kind: str
    queued: int
    running: int
    oldest_queued_seconds: float  # 0 when none is queued
    stale: int  # running, heartbeat older than the sweeper's limit
    overdue: int  # running longer than its attempts could take (started_at is the first's)


def to_out(row: asyncpg.Record | dict[str, Any]) -> JobOut:
    return msgspec.convert(dict(row), JobOut)


def _claimed(row: asyncpg.Record) -> ClaimedJob:
    return msgspec.convert(dict(row), ClaimedJob)


def list_query(query: Query, filters: JobFilters) -> Compiled:
    """The job list `query`, narrowed by `filters` (parameters, never SQL text from a client)."""
    conditions, args = [], []
    for name, value in msgspec.structs.asdict(filters).items():
        if value is not None:
            args.append(value)
            conditions.append(f"{_FILTER_COLUMNS[name]} = ${len(args)}")
    source = SOURCE
    if conditions:
        source = dataclasses.replace(
            SOURCE, base_where=" AND ".join(conditions), base_args=tuple(args)
        )
    return compile_query(query, source)


class JobRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert(
        self,
        job_id: uuid.UUID,
        model_id: int,
        model_name: str,
        kind: JobKind,
        spec: JobSpec,
        created_by: str,
        trace_context: dict[str, str] | None = None,
    ) -> JobOut:
        try:
            row = await self.conn.fetchrow(
                f"""
                INSERT INTO jobs (id, model_id, model_name, kind, status, spec, created_by,
                                  trace_context)
                VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7)
                RETURNING {_OUT}
                """,
                job_id,
                model_id,
                model_name,
                kind,
                spec,
                created_by,
                trace_context,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"model '{model_name}' already has an active job") from exc
        return to_out(row)

    async def actor_of(self, job_id: uuid.UUID) -> Actor | None:
        """Whom the job acts for: its tenant, the `sub` and the request that submitted it."""
        origin = await self.origin_of(job_id)
        return None if origin is None else origin.actor

    async def origin_of(self, job_id: uuid.UUID) -> JobOrigin | None:
        """Its actor, trace context, age (by the database's clock, as `created_at` is) and
        attempts so far."""
        row = await self.conn.fetchrow(
            "SELECT tenant, created_by, coalesce(request_id, ''), kind, model_name, trace_context,"
            " attempts, extract(epoch FROM clock_timestamp() - created_at)::float8 FROM jobs"
            " WHERE id = $1",
            job_id,
        )
        if row is None:
            return None
        tenant, sub, request_id, kind, model_name, trace_context, attempts, waited = row
        return JobOrigin(
            Actor(tenant, sub, request_id),
            kind,
            model_name,
            trace_context,
            max(0.0, waited),
            attempts,
        )

    async def get(self, job_id: uuid.UUID) -> JobOut | None:
        row = await self.conn.fetchrow(f"SELECT {_OUT} FROM jobs WHERE id = $1", job_id)
        return None if row is None else to_out(row)

    async def lock_state(self, job_id: uuid.UUID) -> JobState | None:
        """The job's status and dispatch number, locked for the rest of the transaction."""
        row = await self.conn.fetchrow(
            "SELECT status, dispatches FROM jobs WHERE id = $1 FOR UPDATE", job_id
        )
        return None if row is None else JobState(row["status"], row["dispatches"])

    async def get_claimed(self, job_id: uuid.UUID, *, lock: bool = False) -> ClaimedJob | None:
        row = await self.conn.fetchrow(
            f"SELECT {_CLAIMED} FROM jobs WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            job_id,
        )
        return None if row is None else _claimed(row)

    async def page(self, query: Query, filters: JobFilters) -> tuple[list[dict[str, Any]], int]:
        return await fetch_page(self.conn, list_query(query, filters))

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

    async def claim(self, job_id: uuid.UUID, worker: str) -> ClaimedJob | None:
        """`queued → running` for this worker; None when the job is no longer queued."""
        row = await self.conn.fetchrow(
            f"""
            UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $2,
                started_at = coalesce(started_at, now()), heartbeat_at = now(), progress = 0
            WHERE id = $1 AND status = 'queued'
            RETURNING {_CLAIMED}
            """,
            job_id,
            worker,
        )
        return None if row is None else _claimed(row)

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

    async def succeed(self, job_id: uuid.UUID, result: JobResult) -> None:
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
            JobError(type=error_type, message=message[:2000]),
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

    async def backlog(
        self, stale_after_seconds: float, overdue_after_seconds: float
    ) -> list[Backlog]:
        """One row per kind with active jobs; reads only `queued` and `running` rows (the partial
        index on status), so its cost follows the backlog, not the history."""
        rows = await self.conn.fetch(
            """
            SELECT kind,
                   count(*) FILTER (WHERE status = 'queued') AS queued,
                   count(*) FILTER (WHERE status = 'running') AS running,
                   coalesce(extract(epoch FROM now() - min(created_at)
                                    FILTER (WHERE status = 'queued')), 0)::float8
                       AS oldest_queued_seconds,
                   count(*) FILTER (WHERE status = 'running'
                                    AND heartbeat_at < now() - make_interval(secs => $1)) AS stale,
                   count(*) FILTER (WHERE status = 'running'
                                    AND started_at < now() - make_interval(
                                        secs => $2 * greatest(attempts, 1))) AS overdue
            FROM jobs WHERE status IN ('queued', 'running') GROUP BY kind
            """,
            stale_after_seconds,
            overdue_after_seconds,
        )
        return [msgspec.convert(dict(r), Backlog) for r in rows]

    async def set_progress(self, job_id: uuid.UUID, fraction: float) -> None:
        await self.conn.execute(
            "UPDATE jobs SET progress = $2 WHERE id = $1 AND status = 'running'",
            job_id,
            fraction,
        )
