"""Running a job in a worker: the transport between the queue and the job use cases.

The job row is claimed (`queued → running`), heartbeated while the work runs, and finished by
the use case that did the work (`Fits.record`, `BatchRuns.run`) in one transaction that commits
only if the job is still `running`, so a cancel that lands at the last moment wins. A cancel is
noticed at the next heartbeat (or sooner through the queue's abort signal) and stops the work;
a fit runs in a child process, which is killed.

With tracing on, a job's spans continue the trace of the request that submitted it: `job
queued` (from submission to this pickup, on the first attempt), then `job run` around the
attempt, with `load inputs`, `fit` (the child) and `store version` inside it. A job submitted
outside any trace starts its own at `job run` (sampled at `tracing.sample_ratio`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Iterator

import msgspec
from opentelemetry.trace import NoOpTracer, Span, SpanKind, Tracer
from opentelemetry.util.types import AnyValue

from service.artifacts import signing
from service.domain.actors import acting_as
from service.domain.errors import Unavailable
from service.domain.job_errors import GiveUp, JobLost
from service.domain.job_services import JobServices
from service.domain.job_specs import BatchPredictSpec, ClaimedJob, FitSpec, JobOrigin
from service.estimators.phases import PROGRESS, Phase
from service.settings import Settings
from service.tracing.context import continued, detached
from service.worker import limits
from service.worker.child import ChildDied, run_in_child
from service.worker.errors import RetryLater
from service.worker.fitting import FitOutcome, FitRequest
from service.worker.limits import ChildLimits
from service.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

FIT_TARGET = "service.worker.fitting.fit_in_child"


class JobRunner:
    def __init__(
        self,
        services: JobServices,
        settings: Settings,
        worker: str,
        metrics: WorkerMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer or NoOpTracer()
        self.services = services
        self.runs = services.runs
        self.settings = settings
        self.worker = worker

    async def run(self, job_id: uuid.UUID) -> str:
        """Runs the job if it is still queued, as its tenant and submitter; returns its final
        status for the logs."""
        origin = await self.runs.origin_of(job_id)
        if origin is None:
            return "skipped"
        with acting_as(origin.actor), self._job_span(job_id, origin) as span:
            status = await self._run(job_id)
            span.set_attribute("job.outcome", status)
            return status

    @contextlib.contextmanager
    def _job_span(self, job_id: uuid.UUID, origin: JobOrigin) -> Iterator[Span]:
        attributes: dict[str, AnyValue] = {
            "job.id": str(job_id),
            "job.kind": origin.kind,
            "model.name": origin.model_name,
            "job.attempt": origin.attempts + 1,
            "job.queue_wait_seconds": origin.waited_seconds,
        }
        with continued(origin.trace_context):
            # A retry's wait since submission includes the tries; and without a trace to
            # continue, this span would start a trace of its own.
            if origin.attempts == 0 and origin.trace_context:
                now = time.time_ns()
                queued = now - int(origin.waited_seconds * 1e9)
                self.tracer.start_span("job queued", start_time=queued).end(end_time=now)
            with self.tracer.start_as_current_span(
                "job run", kind=SpanKind.CONSUMER, attributes=attributes
            ) as span:
                yield span

    async def _run(self, job_id: uuid.UUID) -> str:
        job = await self.runs.claim(job_id, self.worker)
        if job is None:
            return "skipped"
        outcome = "interrupted"
        try:
            outcome = await self._attempt(job)
        except RetryLater:
            outcome = "retried"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.job_outcomes.labels(job.kind, outcome).inc()
        return outcome

    async def _attempt(self, job: ClaimedJob) -> str:
        deadline = asyncio.timeout(self.settings.worker.job_timeout)
        try:
            async with deadline:
                await self._with_heartbeat(job, self._work(job))
        except JobLost:
            return await self._lost(job)
        except GiveUp as exc:
            await self._finish_failed(job.id, exc.error_type, exc.message)
            return "failed"
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
                await asyncio.shield(self.runs.release(job.id))
            raise
        except (Unavailable, ChildDied, OSError) as exc:
            return await self._failed_attempt(job, exc)
        except Exception as exc:  # a bug or a tampered artifact: fail the job, log why, go on
            log.exception("job failed unexpectedly", extra={"job": str(job.id)})
            await self._finish_failed(job.id, _public_type(exc), _public_message(exc))
            return "failed"
        return "succeeded"

    async def _lost(self, job: ClaimedJob) -> str:
        """How a job that stopped being ours ended: cancelled, or finished by its own work
        while a heartbeat waited for the row it was committing."""
        with contextlib.suppress(Unavailable):
            status = await self.runs.status(job.id)
            if status in ("succeeded", "failed"):
                return status
        return "cancelled"

    async def _work(self, job: ClaimedJob) -> None:
        if isinstance(job.spec, BatchPredictSpec):
            with self.tracer.start_as_current_span("batch prediction"):
                await self.services.batch_runs.run(job, job.spec)
        else:
            await self._fit(job, job.spec)

    async def _with_heartbeat(self, job: ClaimedJob, work: Awaitable[None]) -> None:
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
            with detached():  # not one span a second in the job's trace
                return await self.runs.beat(job_id)
        except Unavailable:
            return True  # keep fitting; the result is stored when PostgreSQL is back

    async def _fit(self, job: ClaimedJob, spec: FitSpec) -> None:
        fits = self.services.fits
        await self._enter(job, Phase.LOADING)
        with self.tracer.start_as_current_span("load inputs"):
            inputs = await fits.inputs(job, spec)
        worker = self.settings.worker
        request = FitRequest(
            model_type=spec.model_type,
            settings=spec.settings,
            features=spec.features,
            target=spec.target,
            parameters=spec.parameters,
            batches=inputs.batches,
            previous=inputs.previous,
            previous_meta=inputs.previous_meta,
            eval_fraction=worker.eval_fraction,
            eval_min_rows=worker.eval_min_rows,
            eval_max_rows=worker.eval_max_rows or None,
            plugins=self.settings.models.plugins,
            threads=worker.fit_threads,
            limits=msgspec.structs.asdict(self.settings.models.limits),
        )
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span(
                "fit", attributes={"model.type": spec.model_type}
            ):
                reply = await run_in_child(
                    FIT_TARGET,
                    msgspec.msgpack.encode(request),
                    lambda pid: self.runs.record_child(job.id, pid),
                    lambda note: self._enter(job, Phase(note.decode())),
                    limits=ChildLimits.of(worker),
                )
        except ChildDied as exc:
            kind = limits.exit_kind(exc.exitcode)
            if kind is None:
                raise
            raise self._limit_hit(kind) from exc
        finally:
            if self.metrics is not None:
                elapsed = time.perf_counter() - started
                self.metrics.fit_duration.labels(spec.model_type).observe(elapsed)
        outcome = msgspec.msgpack.decode(reply, type=FitOutcome)
        if outcome.error_type == limits.RESOURCE_LIMIT:
            raise self._limit_hit(outcome.limit)
        if not outcome.ok:
            raise GiveUp(outcome.error_type, outcome.message)
        await self._enter(job, Phase.STORING)
        with self.tracer.start_as_current_span("store version") as span:
            version = await fits.record(job, spec, outcome, inputs)
            span.set_attribute("model.version", version)

    def _limit_hit(self, kind: str) -> GiveUp:
        """The failure of a fit that hit a limit of its child process: never retried."""
        if self.metrics is not None:
            self.metrics.fit_limits.labels(kind).inc()
        return GiveUp(limits.RESOURCE_LIMIT, limits.message(kind, self.settings.worker))

    async def _enter(self, job: ClaimedJob, phase: Phase) -> None:
        """The job's `progress` as `phase` starts; progress is news, never worth failing for."""
        with contextlib.suppress(Unavailable):
            await self.runs.progress(job.id, PROGRESS[phase])

    async def _finish_failed(self, job_id: uuid.UUID, error_type: str, message: str) -> None:
        await self.runs.fail(job_id, error_type, message)
        log.info("job failed", extra={"job": str(job_id), "error_type": error_type})

    async def _failed_attempt(self, job: ClaimedJob, exc: BaseException) -> str:
        message = f"{type(exc).__name__}: {exc}"
        log.warning("job attempt failed", extra={"job": str(job.id), "error": message})
        if job.attempts >= self.settings.worker.max_tries:
            with contextlib.suppress(Unavailable):
                await self._finish_failed(job.id, "InfrastructureError", message)
            return "failed"
        with contextlib.suppress(Unavailable):
            await self.runs.release(job.id)
        raise RetryLater(job.attempts)


def _public_type(exc: Exception) -> str:
    return "TamperedArtifact" if isinstance(exc, signing.TamperedArtifact) else "InternalError"


def _public_message(exc: Exception) -> str:
    """What a client may read: never an internal error's text (that goes to the log)."""
    if isinstance(exc, signing.TamperedArtifact):
        return "the stored model artifact failed verification and was not loaded"
    return "the job failed because of an internal error; it has been logged"
