"""The use cases around a training or update job's fit: gather its inputs, record its version.

The worker asks `Fits.inputs` for the rows (inline ones stored with the job, or a dataset query
read now), the base version's rows for a refit, and for an incremental update the base
artifact (verified before it leaves here) with the metadata `partial_fit` needs. It runs the fit
in a child process and hands the `FittedVersion` to `Fits.record`, which stores the version,
makes it current and finishes the job in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec

from service.artifacts import signing
from service.artifacts.store import ArtifactStore
from service.domain.job_errors import GiveUp, JobLost
from service.domain.job_rows import read_training_rows
from service.domain.job_specs import (
    ClaimedJob,
    DatasetSource,
    FitSpec,
    FittedVersion,
    PreviousVersion,
    TrainingSource,
    UpdateSpec,
    VersionMade,
)
from service.domain.versions import make_current
from service.estimators.frame import FeatureKind
from service.repositories.database import Database
from service.repositories.jobs import JobRepository
from service.repositories.models import ModelRepository
from service.repositories.versions import (
    BatchRepository,
    NewVersion,
    StoredBatch,
    VersionRepository,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitInputs:
    batches: list[bytes]  # the rows to fit on, as stored
    batch_ids: list[int]  # the rows the new version is built from (a refit's include the base's)
    source: TrainingSource  # as the new version shows it
    previous: bytes | None = None  # the base artifact, verified, for partial_fit
    previous_meta: PreviousVersion | None = None


class Fits:
    def __init__(self, db: Database, artifacts: ArtifactStore, max_train_rows: int) -> None:
        self.db = db
        self.artifacts = artifacts
        self.max_train_rows = max_train_rows

    async def inputs(self, job: ClaimedJob, spec: FitSpec) -> FitInputs:
        new_batches, source = await self._new_rows(job, spec)
        base_batches: list[int] = []
        previous: bytes | None = None
        previous_meta: PreviousVersion | None = None
        if isinstance(spec, UpdateSpec):
            base = await self.artifacts.fetch(job.model_id, spec.base_version)
            if base is None:
                raise JobLost("the base version is gone")
            base_batches = base.version.batch_ids
            if spec.incremental:
                previous = base.data
                previous_meta = PreviousVersion(
                    model_type=spec.model_type,
                    settings=spec.settings,
                    features=base.version.features,
                    feature_kinds=msgspec.convert(
                        base.version.feature_kinds, dict[str, FeatureKind]
                    ),
                    target=base.version.target,
                    classes=base.version.classes,
                    rows=base.version.rows,
                )
        incremental = isinstance(spec, UpdateSpec) and spec.incremental
        read = new_batches if incremental else [*base_batches, *new_batches]
        async with self.db.connection() as conn:
            # A refit trains on every batch since the first training: their sum is capped too.
            total = await BatchRepository(conn).row_total(read)
            if total > self.max_train_rows:
                raise GiveUp(
                    "TooManyRows",
                    f"this refit would train on {total} rows, the current version's and the new"
                    f" ones, more than worker.max_train_rows ({self.max_train_rows}); train the"
                    " model afresh on fewer rows",
                )
            data = await BatchRepository(conn).data(read)
        return FitInputs(
            batches=data,
            batch_ids=[*base_batches, *new_batches],
            source=source,
            previous=previous,
            previous_meta=previous_meta,
        )

    async def record(
        self, job: ClaimedJob, spec: FitSpec, fitted: FittedVersion, inputs: FitInputs
    ) -> int:
        """Stores the fitted version, makes it current and marks the job succeeded, all at
        once and only while the job is still running: a cancel that lands at the last moment
        wins (JobLost) and leaves the current version untouched."""
        digest = signing.sha256(fitted.artifact)  # the costly pass, before any lock is taken
        new = NewVersion(
            model_id=job.model_id,
            created_by=job.created_by,
            job_id=job.id,
            kind="update" if isinstance(spec, UpdateSpec) else "train",
            parent_version=spec.base_version if isinstance(spec, UpdateSpec) else None,
            rows=fitted.rows,
            source=inputs.source,
            metrics=fitted.metrics,
            features=fitted.features,
            feature_kinds=fitted.feature_kinds,
            target=fitted.target,
            classes=fitted.classes,
            outputs=fitted.outputs,
            batch_ids=inputs.batch_ids,
            library_versions=fitted.library_versions,
            settings=fitted.settings,
            warnings=fitted.warnings,
        )
        async with self.db.transaction() as conn:
            # Model row first, then the job row: the order every other path takes (delete).
            if await ModelRepository(conn).lock_by_id(job.model_id) is None:
                raise JobLost(str(job.id))
            if not await JobRepository(conn).lock_if_running(job.id):
                raise JobLost(str(job.id))
            versions = VersionRepository(conn)
            version = await versions.next_number(job.model_id)
            # Sealed for its place, which is known only now: a copy elsewhere does not verify.
            place = signing.Place(job.tenant, job.model_id, version)
            seal = self.artifacts.seal(digest, place)
            await versions.insert(new, version, fitted.artifact, seal)
            await make_current(conn, job.model_id, job.model_name, version)
            await JobRepository(conn).succeed(job.id, VersionMade(version=version))
        log.info(
            "version stored",
            extra={"job": str(job.id), "model": job.model_name, "version": version},
        )
        return version

    async def _new_rows(self, job: ClaimedJob, spec: FitSpec) -> tuple[list[int], TrainingSource]:
        """The job's own rows: sent inline, read by an earlier attempt, or read now."""
        if spec.batch_id is not None:  # inline, or a dataset read recorded by older releases
            return [spec.batch_id], spec.source
        async with self.db.connection() as conn:
            stored = await BatchRepository(conn).of_job(job.id)
        if stored is None:
            stored = await read_training_rows(self.db, job, spec, self.max_train_rows)
        return [stored.id], _with_rows(spec.source, stored)


def _with_rows(source: TrainingSource, batch: StoredBatch) -> TrainingSource:
    if isinstance(source, DatasetSource):
        return msgspec.structs.replace(source, rows=batch.row_count)
    return source
