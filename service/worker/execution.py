"""Running a training or update job in a worker.

The job row is claimed (`queued → running`), heartbeated while the fit runs in a child process,
and finished in one transaction that stores the version, makes it current and marks the job
`succeeded` — only if the job is still `running`, so a cancel that lands at the last moment
wins and leaves the current version untouched. A cancel is noticed at the next heartbeat (or
sooner through the queue's abort signal) and kills the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from service.artifacts import signing
from service.domain.errors import Unavailable
from service.estimators.phases import PROGRESS, Phase
from service.repositories.database import Connection, Database
from service.repositories.jobs import JobRepository, JobRow
from service.repositories.models import ModelRepository
from service.repositories.versions import BatchRepository, NewVersion, VersionRepository
from service.settings import Settings
from service.worker.batch_predict import run_batch_predict
from service.worker.child import ChildDied, run_in_child
from service.worker.errors import JobLost, RetryLater
from service.worker.fitting import FitOutcome, FitRequest

log = logging.getLogger(__name__)

FIT_TARGET = "service.worker.fitting.fit_in_child"


BatchLoader = Callable[[Connection, JobRow], Awaitable[list[int]]]


class JobRunner:
    def __init__(self, db: Database, settings: Settings, worker: str) -> None:
        self.db = db
        self.settings = settings
        self.worker = worker
        self.dataset_loader: BatchLoader | None = None

    async def run(self, job_id: uuid.UUID) -> str:
        """Runs the job if it is still queued; returns its final status for the logs."""
        job = await self._claim(job_id)
        if job is None:
            return "skipped"
        deadline = asyncio.timeout(self.settings.worker.job_timeout)
        try:
            async with deadline:
                work = (
                    run_batch_predict(self, job)
                    if job.kind == "batch_predict"
                    else self._train(job)
                )
                await self._with_heartbeat(job, work)
        except JobLost:
            return "cancelled"
        except TimeoutError as exc:
            if not deadline.expired():  # some I/O timed out, not the job: try again later
                return await self._failed_attempt(job, exc)
            await self._finish_failed(
                job.id, "Timeout", f"the job ran longer than {self.settings.worker.job_timeout} s"
            )
            return "failed"
        except asyncio.CancelledError:
            # Worker shutdown or an abort: a job that is still ours goes back to the queue.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(job.id))
            raise
        except (Unavailable, ChildDied, OSError) as exc:
            return await self._failed_attempt(job, exc)
        except Exception as exc:  # a bug or a tampered artifact: fail the job, log why, go on
            log.exception("job failed unexpectedly", extra={"job": str(job.id)})
            await self._finish_failed(job.id, _public_type(exc), _public_message(exc))
            return "failed"
        return "succeeded"

    async def _claim(self, job_id: uuid.UUID) -> JobRow | None:
        async with self.db.transaction() as conn:
            return await JobRepository(conn).claim(job_id, self.worker)

    async def _with_heartbeat(self, job: JobRow, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._beat_interval())
                if done:
                    return task.result()
                if not await self._beat(job.id):
                    raise JobLost(str(job.id))
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def _beat_interval(self) -> float:
        # Cancels are seen at the next beat, so beat at least every second.
        return min(1.0, self.settings.worker.heartbeat_seconds)

    async def _beat(self, job_id: uuid.UUID) -> bool:
        try:
            async with self.db.connection() as conn:
                return await JobRepository(conn).beat(job_id)
        except Unavailable:
            return True  # keep fitting; the result is stored when PostgreSQL is back

    async def _train(self, job: JobRow) -> None:
        await self._enter(job, Phase.LOADING)
        request, parent_batches = await self._fit_request(job)
        reply = await run_in_child(
            FIT_TARGET,
            msgspec.msgpack.encode(request),
            lambda pid: self._record_child(job, pid),
            lambda note: self._enter(job, Phase(note.decode())),
        )
        outcome = msgspec.msgpack.decode(reply, type=FitOutcome)
        if not outcome.ok:
            await self._finish_failed(job.id, outcome.error_type, outcome.message)
            return
        await self._enter(job, Phase.STORING)
        await self._store_version(job, outcome, parent_batches)

    async def _enter(self, job: JobRow, phase: Phase) -> None:
        """The job's `progress` as `phase` starts; progress is news, never worth failing for."""
        with contextlib.suppress(Unavailable):
            async with self.db.connection() as conn:
                await JobRepository(conn).set_progress(job.id, PROGRESS[phase])

    async def _fit_request(self, job: JobRow) -> tuple[FitRequest, list[int]]:
        spec = job.spec
        async with self.db.connection() as conn:
            new_batches = await self._batches_of(conn, job)
            parent_batches: list[int] = []
            previous: bytes | None = None
            previous_meta: dict[str, Any] | None = None
            if spec.get("base_version") is not None:
                versions = VersionRepository(conn)
                parent = await versions.get_row(job.model_id, spec["base_version"])
                if parent is None:
                    raise JobLost("the base version is gone")
                parent_batches = parent.batch_ids
                if spec["incremental"]:
                    previous = await versions.artifact(job.model_id, parent.version)
                    if previous is None:
                        raise JobLost("the base artifact is gone")
                    signing.verify(
                        previous,
                        parent.artifact_hmac,
                        parent.artifact_sha256,
                        self.settings.artifacts.hmac_key,
                    )
                    previous_meta = {
                        "model_type": spec["model_type"],
                        "settings": spec["settings"],
                        "features": parent.features,
                        "feature_kinds": parent.feature_kinds,
                        "target": parent.target,
                        "classes": parent.classes,
                        "rows": parent.rows,
                    }
            read = new_batches if spec["incremental"] else [*parent_batches, *new_batches]
            data = await BatchRepository(conn).data(read)
        request = FitRequest(
            model_type=spec["model_type"],
            settings=spec["settings"],
            features=spec["features"],
            target=spec["target"],
            parameters=spec["parameters"],
            batches=data,
            previous=previous,
            previous_meta=previous_meta,
            eval_fraction=self.settings.worker.eval_fraction,
            eval_min_rows=self.settings.worker.eval_min_rows,
            eval_max_rows=self.settings.worker.eval_max_rows or None,
            plugins=self.settings.models.plugins,
        )
        return request, [*parent_batches, *new_batches]

    async def _batches_of(self, conn: Connection, job: JobRow) -> list[int]:
        if "batch_id" in job.spec:
            return [int(job.spec["batch_id"])]
        if self.dataset_loader is None:
            raise RuntimeError("this worker cannot read datasets")
        return await self.dataset_loader(conn, job)

    async def _record_child(self, job: JobRow, pid: int) -> None:
        async with self.db.connection() as conn:
            await JobRepository(conn).set_child(job.id, pid)

    async def _store_version(self, job: JobRow, outcome: FitOutcome, batch_ids: list[int]) -> None:
        key = self.settings.artifacts.hmac_key
        artifact = outcome.artifact
        spec = job.spec
        new = NewVersion(
            model_id=job.model_id,
            created_by=job.created_by,
            job_id=job.id,
            kind=job.kind,
            parent_version=spec.get("base_version"),
            rows=outcome.rows,
            source=spec["source"],
            metrics=outcome.metrics,
            features=outcome.features,
            feature_kinds=outcome.feature_kinds,
            target=outcome.target,
            classes=outcome.classes,
            outputs=outcome.outputs,
            batch_ids=batch_ids,
            library_versions=outcome.library_versions,
            settings=outcome.settings,
            warnings=outcome.warnings,
            artifact_sha256=signing.sha256(artifact),
            artifact_hmac=signing.sign(artifact, key),
        )
        async with self.db.transaction() as conn:
            # Model row first, then the job row: the order every other path takes (delete).
            if await ModelRepository(conn).lock_by_id(job.model_id) is None:
                raise JobLost(str(job.id))
            if not await JobRepository(conn).lock_if_running(job.id):
                raise JobLost(str(job.id))
            version = await VersionRepository(conn).insert(new, artifact)
            await ModelRepository(conn).set_current_version(job.model_id, version)
            await JobRepository(conn).succeed(job.id, {"version": version})
            await ModelRepository(conn).notify_changed(job.model_name)
        log.info(
            "version stored",
            extra={"job": str(job.id), "model": job.model_name, "version": version},
        )

    async def _finish_failed(self, job_id: uuid.UUID, error_type: str, message: str) -> None:
        async with self.db.transaction() as conn:
            await JobRepository(conn).fail([job_id], error_type, message)
        log.info("job failed", extra={"job": str(job_id), "error_type": error_type})

    async def _failed_attempt(self, job: JobRow, exc: BaseException) -> str:
        message = f"{type(exc).__name__}: {exc}"
        log.warning("job attempt failed", extra={"job": str(job.id), "error": message})
        if job.attempts >= self.settings.worker.max_tries:
            with contextlib.suppress(Unavailable):
                await self._finish_failed(job.id, "InfrastructureError", message)
            return "failed"
        with contextlib.suppress(Unavailable):
            await self._release(job.id)
        raise RetryLater(job.attempts)

    async def _release(self, job_id: uuid.UUID) -> None:
        async with self.db.transaction() as conn:
            await JobRepository(conn).release(job_id)


def _public_type(exc: Exception) -> str:
    return "TamperedArtifact" if isinstance(exc, signing.TamperedArtifact) else "InternalError"


def _public_message(exc: Exception) -> str:
    """What a client may read: never an internal error's text (that goes to the log)."""
    if isinstance(exc, signing.TamperedArtifact):
        return "the stored model artifact failed verification and was not loaded"
    return "the job failed because of an internal error; it has been logged"
