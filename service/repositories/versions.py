"""The `model_versions`, `artifacts` and `training_batches` tables."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from service.artifacts.signing import Seal
from service.domain.job_specs import TrainingSource
from service.repositories.database import Connection
from service.schemas.jobs import FitKind
from service.schemas.training import VersionOut

_OUT = """
    v.version, v.created_at, v.created_by, v.tenant, v.job_id, v.kind, v.parent_version, v.rows,
    v.source,
    v.metrics, v.features, v.target, v.classes, v.outputs, v.artifact_sha256, v.artifact_bytes,
    v.library_versions, v.settings, v.warnings,
    (m.current_version IS NOT DISTINCT FROM v.version) AS current
"""


class VersionRow(msgspec.Struct, kw_only=True):
    """What loading or extending a version needs beyond its public fields."""

    tenant: str
    model_id: int
    version: int
    rows: int
    features: list[str]
    feature_kinds: dict[str, str]
    target: str | None
    classes: list[Any] | None
    outputs: list[str]
    batch_ids: list[int]
    artifact_sha256: str
    artifact_hmac: str
    artifact_key_id: str | None  # None: signed before key ids (the v1 scheme)
    artifact_tenant: str | None = None  # the tenant a seal from before tenants names


class NewVersion(msgspec.Struct, kw_only=True):
    model_id: int
    created_by: str
    job_id: uuid.UUID
    kind: FitKind
    parent_version: int | None
    rows: int
    source: TrainingSource
    metrics: dict[str, float | None]
    features: list[str]
    feature_kinds: dict[str, str]
    target: str | None
    classes: list[Any] | None
    outputs: list[str]
    batch_ids: list[int]
    library_versions: dict[str, str]
    settings: dict[str, Any]
    warnings: list[str]


class VersionRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def list(self, model_id: int, limit: int, offset: int) -> tuple[list[VersionOut], int]:
        rows = await self.conn.fetch(
            f"SELECT {_OUT} FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.model_id = $1 ORDER BY v.version DESC LIMIT $2 OFFSET $3",
            model_id,
            limit,
            offset,
        )
        total = await self.conn.fetchval(
            "SELECT count(*) FROM model_versions WHERE model_id = $1", model_id
        )
        return [msgspec.convert(dict(r), VersionOut) for r in rows], int(total)

    async def get(self, model_id: int, version: int) -> VersionOut | None:
        row = await self.conn.fetchrow(
            f"SELECT {_OUT} FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.model_id = $1 AND v.version = $2",
            model_id,
            version,
        )
        return None if row is None else msgspec.convert(dict(row), VersionOut)

    async def numbers(self, model_id: int, limit: int) -> builtins.list[int]:
        """The model's version numbers, newest first."""
        rows = await self.conn.fetch(
            "SELECT version FROM model_versions WHERE model_id = $1 ORDER BY version DESC LIMIT $2",
            model_id,
            limit,
        )
        return [int(r["version"]) for r in rows]

    async def get_row(self, model_id: int, version: int) -> VersionRow | None:
        row = await self.conn.fetchrow(
            "SELECT tenant, model_id, version, rows, features, feature_kinds, target, classes,"
            " outputs, batch_ids, artifact_sha256, artifact_hmac, artifact_key_id,"
            " artifact_tenant FROM model_versions WHERE model_id = $1 AND version = $2",
            model_id,
            version,
        )
        return None if row is None else msgspec.convert(dict(row), VersionRow)

    async def missing(self, model_id: int, versions: Sequence[int]) -> set[int]:
        """Which of `versions` the model does not have."""
        found = await self.conn.fetch(
            "SELECT version FROM model_versions WHERE model_id = $1 AND version = ANY($2)",
            model_id,
            list(versions),
        )
        return set(versions) - {r["version"] for r in found}

    async def artifact_size(self, model_id: int, version: int) -> int | None:
        """The artifact's size in bytes, read from its TOAST pointer (storage EXTERNAL, so
        uncompressed): the bytes themselves are not read."""
        size: int | None = await self.conn.fetchval(
            "SELECT octet_length(data) FROM artifacts WHERE model_id = $1 AND version = $2",
            model_id,
            version,
        )
        return size

    async def artifact(self, model_id: int, version: int) -> bytes | None:
        data: bytes | None = await self.conn.fetchval(
            "SELECT data FROM artifacts WHERE model_id = $1 AND version = $2", model_id, version
        )
        return data

    async def next_number(self, model_id: int) -> int:
        """The number `insert` will take for the model's next version (numbers are per model,
        from 1); the model row stays locked to the end of the transaction, so it holds."""
        await self.conn.execute("SELECT 1 FROM models WHERE id = $1 FOR UPDATE", model_id)
        version: int = await self.conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_id = $1",
            model_id,
        )
        return version

    async def insert(self, new: NewVersion, version: int, artifact: bytes, seal: Seal) -> None:
        """Adds version `version` (from `next_number`) with its artifact, sealed for it."""
        await self.conn.execute(
            """
            INSERT INTO model_versions (model_id, version, created_by, job_id, kind,
                parent_version, rows, source, metrics, features, feature_kinds, target, classes,
                outputs, batch_ids, library_versions, artifact_sha256, artifact_bytes,
                artifact_hmac, artifact_key_id, settings, warnings)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                    $18, $19, $20, $21, $22)
            """,
            new.model_id,
            version,
            new.created_by,
            new.job_id,
            new.kind,
            new.parent_version,
            new.rows,
            new.source,
            new.metrics,
            new.features,
            new.feature_kinds,
            new.target,
            new.classes,
            new.outputs,
            new.batch_ids,
            new.library_versions,
            seal.sha256,
            len(artifact),
            seal.hmac,
            seal.key_id,
            new.settings,
            new.warnings,
        )
        await self.conn.execute(
            "INSERT INTO artifacts (model_id, version, data) VALUES ($1, $2, $3)",
            new.model_id,
            version,
            artifact,
        )


class StoredBatch(msgspec.Struct, frozen=True):
    id: int
    row_count: int


class BatchRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def allocate_id(self) -> int:
        """An id for a batch inserted later in the transaction, so a job's spec can name its
        rows before the job row (which the batch refers to) exists."""
        batch_id: int = await self.conn.fetchval(
            "SELECT nextval(pg_get_serial_sequence('training_batches', 'id'))"
        )
        return batch_id

    async def insert(
        self,
        model_id: int,
        job_id: uuid.UUID | None,
        columns: list[str],
        row_count: int,
        data: bytes,
        batch_id: int | None = None,
    ) -> int:
        """Stores rows under `batch_id` (from `allocate_id`), or a new id when None."""
        if batch_id is None:
            batch_id = await self.allocate_id()
        await self.conn.execute(
            "INSERT INTO training_batches (id, model_id, job_id, columns, row_count, data)"
            " OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6)",
            batch_id,
            model_id,
            job_id,
            columns,
            row_count,
            data,
        )
        return batch_id

    async def of_job(self, job_id: uuid.UUID) -> StoredBatch | None:
        """The rows a job stored for itself (an earlier attempt's read of a dataset)."""
        row = await self.conn.fetchrow(
            "SELECT id, row_count FROM training_batches WHERE job_id = $1 ORDER BY id LIMIT 1",
            job_id,
        )
        return None if row is None else StoredBatch(row["id"], row["row_count"])

    async def purge_unused(self, older_than_seconds: float) -> int:
        """Drops rows no version was built from and no queued or running job still needs
        (those of failed and cancelled jobs)."""
        result: str = await self.conn.execute(
            """
            DELETE FROM training_batches b
            WHERE b.created_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT 1 FROM model_versions v WHERE v.batch_ids @> ARRAY[b.id])
              AND NOT EXISTS (
                  SELECT 1 FROM jobs j
                  WHERE j.id = b.job_id AND j.status IN ('queued', 'running')
              )
            """,
            older_than_seconds,
        )
        return int(result.split()[-1])

    async def row_total(self, batch_ids: list[int]) -> int:
        total = await self.conn.fetchval(
            "SELECT coalesce(sum(row_count), 0) FROM training_batches WHERE id = any($1::bigint[])",
            batch_ids,
        )
        return int(total)

    async def data(self, batch_ids: list[int]) -> list[bytes]:
        rows = await self.conn.fetch(
            "SELECT id, data FROM training_batches WHERE id = any($1::bigint[])", batch_ids
        )
        by_id = {r["id"]: r["data"] for r in rows}
        return [by_id[i] for i in batch_ids if i in by_id]
