"""Use cases of jobs: submit training and updates, follow them, cancel them.

A submission is validated, then its rows, its job row and (when keyed) its idempotent response
are written in one transaction; only after the commit is the job handed to the queue. PostgreSQL
is the truth: a job the queue lost is enqueued again by the sweeper.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from service.domain import batches
from service.domain.dataset_queries import compile_stored, plan_dataset
from service.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from service.domain.fit_settings import fit_settings
from service.domain.job_specs import (
    BatchPredictSpec,
    DatasetSource,
    FitSpec,
    JobSpec,
    TrainingSource,
    TrainSpec,
    UpdateSpec,
)
from service.domain.limits import too_many_active_jobs
from service.domain.models import load_row, lock_model
from service.domain.preconditions import IfMatch
from service.estimators.catalogue import Catalogue
from service.jobs.queue import JobQueue
from service.query import Query
from service.repositories.database import Connection, Database
from service.repositories.idempotency import IdempotencyRepository, StoredResponse
from service.repositories.jobs import JobFilters, JobRepository
from service.repositories.model_types import ModelTypeRepository
from service.repositories.models import ModelRepository, ModelRow
from service.repositories.quotas import lock_and_count_active_jobs
from service.repositories.versions import BatchRepository, VersionRepository, VersionRow
from service.schemas.base import Page
from service.schemas.jobs import FitKind, JobKind, JobOut, ModelStatus
from service.schemas.training import TrainRequest
from service.settings import WorkerSettings
from service.tracing.context import current_carrier


@dataclasses.dataclass(frozen=True)
class IdempotencyKey:
    """`Idempotency-Key` of a request, with a fingerprint of what was asked."""

    key: str
    principal: str
    method: str
    path: str
    fingerprint: str

    @staticmethod
    def of(key: str, principal: str, method: str, path: str, body: bytes) -> IdempotencyKey:
        return IdempotencyKey(key, principal, method, path, hashlib.sha256(body).hexdigest())


@dataclasses.dataclass(frozen=True)
class Submitted:
    job: JobOut
    replayed: bool = False


@dataclasses.dataclass(frozen=True)
class PlannedJob:
    """A job's spec, and the inline rows to store under the spec's `batch_id`."""

    spec: JobSpec
    rows: batches.Batch | None = None


Planner = Callable[[Connection, ModelRow], Awaitable[PlannedJob]]

_job_encoder = msgspec.json.Encoder()
_job_decoder = msgspec.json.Decoder(JobOut)


class Jobs:
    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        catalogue: Catalogue,
        settings: WorkerSettings,
        max_active_jobs: int | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.catalogue = catalogue  # to check a request's settings, as at model creation
        self.settings = settings
        self.max_active_jobs = max_active_jobs  # per tenant (`limits.active_jobs_per_tenant`)

    # -- submission ---------------------------------------------------------------------------

    async def submit(
        self, name: str, kind: FitKind, body: TrainRequest, who: str, idem: IdempotencyKey | None
    ) -> Submitted:
        """Train or update: the inline rows, if any, are stored with the job."""
        batch = self._inline_batch(body)

        async def plan(conn: Connection, model: ModelRow) -> PlannedJob:
            spec = await _plan(
                conn, model, kind, body, batch, self.catalogue, self.settings.max_train_rows
            )
            return PlannedJob(spec, batch)

        return await self.submit_job(name, kind, who, idem, plan)

    async def submit_job(
        self, name: str, kind: JobKind, who: str, idem: IdempotencyKey | None, plan: Planner
    ) -> Submitted:
        """The one submission transaction of every job kind: replay a keyed request, lock the
        model, plan the job (raising on anything invalid), insert it with its rows, remember
        the response for its key; then, after the commit, enqueue it. A job beyond the tenant's
        active-jobs quota is refused; a replay is not a new job and is never refused."""
        async with self.db.transaction() as conn:
            if idem is not None:
                stored = await IdempotencyRepository(conn).lock_and_get(
                    idem.principal, idem.key, idem.method, idem.path
                )
                if stored is not None:
                    return _replay(stored, idem)
            model = await _lock_model(conn, name)
            planned = await plan(conn, model)
            # The submitting request's span, which the worker's spans of this job continue.
            job = await JobRepository(conn).insert(
                uuid.uuid4(), model.id, name, kind, planned.spec, who, current_carrier()
            )
            # Counted after the insert, so a second active job of one model is still the
            # repository's 409, and the count includes this job.
            limit = self.max_active_jobs
            if limit is not None and await lock_and_count_active_jobs(conn) > limit:
                raise too_many_active_jobs(limit)
            if planned.rows is not None:
                await _store_rows(conn, model, job, planned)
            if idem is not None:
                await IdempotencyRepository(conn).store(
                    idem.principal,
                    idem.key,
                    idem.method,
                    idem.path,
                    StoredResponse(idem.fingerprint, 202, _job_encoder.encode(job), None),
                    model.id,
                )
        await self.queue.enqueue(job.id)
        return Submitted(job)

    def _inline_batch(self, body: TrainRequest) -> batches.Batch | None:
        if (body.data is None) == (body.dataset is None):
            raise InvalidInput(
                "give exactly one data source",
                [FieldError("$", "expected exactly one of `data` or `dataset`")],
            )
        if body.data is None:
            return None
        if not body.data:
            raise InvalidInput("no rows to train on", [FieldError("$.data", "is empty")])
        if len(body.data) > self.settings.max_train_rows:
            raise InvalidInput(
                f"at most {self.settings.max_train_rows} rows per job",
                [FieldError("$.data", f"has {len(body.data)} rows")],
            )
        return batches.from_records(body.data)

    # -- reading ------------------------------------------------------------------------------

    async def get(self, job_id: uuid.UUID) -> JobOut:
        async with self.db.connection() as conn:
            job = await JobRepository(conn).get(job_id)
        if job is None:
            raise NotFound(f"job '{job_id}' does not exist")
        return job

    async def list(self, query: Query, filters: Mapping[str, str]) -> Page[dict[str, Any]]:
        """Jobs matching `query`, narrowed by the equality `filters` (model, status, kind)."""
        async with self.db.connection() as conn:
            items, total = await JobRepository(conn).page(query, JobFilters(**filters))
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def status(self, name: str) -> ModelStatus:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            job = await JobRepository(conn).get(model.job_id) if model.job_id else None
        # The status is the job's own, read once, so the two can never disagree.
        return ModelStatus(status=job.status if job else "idle", job=job)

    # -- cancelling ---------------------------------------------------------------------------

    async def cancel(self, job_id: uuid.UUID) -> JobOut:
        async with self.db.transaction() as conn:
            repo = JobRepository(conn)
            row = await repo.lock_state(job_id)
            if row is None:
                raise NotFound(f"job '{job_id}' does not exist")
            job = await repo.cancel(job_id)
            if job is None:
                raise Conflict(f"job '{job_id}' has already finished ({row.status})")
        await self.queue.abort(job_id, row.dispatches)
        return job

    async def cancel_active(self, name: str) -> JobOut:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            active = await JobRepository(conn).active_for_model(model.id)
        if active is None:
            raise Conflict(f"model '{name}' has no active job")
        return await self.cancel(active.id)

    async def delete_model(self, name: str, if_match: IfMatch | None = None) -> None:
        """Cancels the model's jobs, then deletes it with its versions, artifacts and rows."""
        async with self.db.transaction() as conn:
            repo = ModelRepository(conn)
            model_id = await lock_model(conn, name, if_match)
            cancelled = await JobRepository(conn).cancel_all_for_model(model_id)
            await repo.delete(model_id)
            await repo.notify_changed(name)
        for job_id, dispatch in cancelled:
            await self.queue.abort(job_id, dispatch)


async def _plan(
    conn: Connection,
    model: ModelRow,
    kind: FitKind,
    body: TrainRequest,
    batch: batches.Batch | None,
    catalogue: Catalogue,
    max_rows: int,
) -> FitSpec:
    """Checks the model can do `kind` with these columns and settings; returns the job's
    spec."""
    model_type = await ModelTypeRepository(conn).capabilities(model.model_type)
    if kind == "train" and not model_type.can_input:
        raise Conflict(f"model type '{model.model_type}' cannot be trained")
    base = None
    if kind == "update":
        if not model_type.can_update:
            raise Conflict(f"model type '{model.model_type}' cannot be updated")
        if model.current_version is None:
            raise Conflict(f"model '{model.name}' has no version to update; train it first")
        base = await VersionRepository(conn).get_row(model.id, model.current_version)
        assert base is not None
    incremental = base is not None and bool(model_type.incremental)
    settings = fit_settings(
        catalogue, model.model_type, model.settings, body.settings, incremental=incremental
    )
    columns = batch.columns if batch is not None else None
    dataset = None
    if body.dataset is not None:
        dataset = await plan_dataset(conn, body.dataset)
        columns = dataset.columns
    features, target = _resolve_columns(model, body, base, columns, model_type.supervised)
    read = [*features, *([target] if target else [])]
    if batch is not None:
        _require_columns(batch.columns, read)
    source: TrainingSource = "inline"
    dataset_id = batch_id = None
    if dataset is not None and body.dataset is not None:
        # The worker reads the rows itself (service/domain/job_rows.py).
        dataset.require(features, target)
        compile_stored(body.dataset, dataset.dataset, read)
        source, dataset_id = DatasetSource(query=body.dataset), dataset.dataset.id
    else:
        batch_id = await BatchRepository(conn).allocate_id()
    train = TrainSpec(
        model_type=model.model_type,
        settings=settings,
        features=features,
        target=target,
        parameters=body.parameters,
        source=source,
        dataset_id=dataset_id,
        batch_id=batch_id,
    )
    if base is None:
        return train
    if not incremental and batch is not None and base.rows + len(batch) > max_rows:
        # A refit trains on the rows of every version before it too (a dataset's are counted
        # by the worker, which reads them).
        raise InvalidInput(
            f"this refit would train on {base.rows + len(batch)} rows, more than {max_rows}",
            [
                FieldError(
                    "$.data", f"with the {base.rows} rows of version {base.version}, too many"
                )
            ],
        )
    return UpdateSpec(
        **msgspec.structs.asdict(train), base_version=base.version, incremental=incremental
    )


async def _store_rows(conn: Connection, model: ModelRow, job: JobOut, planned: PlannedJob) -> None:
    """The inline rows, under the id the spec already names."""
    rows, spec = planned.rows, planned.spec
    assert rows is not None and not isinstance(spec, BatchPredictSpec)
    await BatchRepository(conn).insert(
        model.id, job.id, rows.columns, len(rows), batches.encode(rows), batch_id=spec.batch_id
    )


async def _lock_model(conn: Connection, name: str) -> ModelRow:
    if await ModelRepository(conn).lock(name) is None:
        raise NotFound(f"model '{name}' does not exist")
    return await load_row(conn, name)


def _replay(stored: StoredResponse, idem: IdempotencyKey) -> Submitted:
    if stored.request_hash != idem.fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was used with a different request",
            [FieldError("Idempotency-Key", "reused with a different body")],
        )
    return Submitted(_job_decoder.decode(stored.body), replayed=True)


def _resolve_columns(
    model: ModelRow,
    body: TrainRequest,
    base: VersionRow | None,
    columns: Sequence[str] | None,
    supervised: bool,
) -> tuple[list[str], str | None]:
    if base is not None:  # an update keeps the columns the current version was built on
        if body.features is not None and body.features != base.features:
            raise InvalidInput(
                "an update uses the features of the current version",
                [FieldError("$.features", f"must be {base.features} or left out")],
            )
        if body.target is not None and body.target != base.target:
            raise InvalidInput(
                "an update uses the target of the current version",
                [FieldError("$.target", f"must be '{base.target}' or left out")],
            )
        return list(base.features), base.target
    target = body.target or model.target
    if supervised and target is None:
        raise InvalidInput(
            f"model type '{model.model_type}' learns a target; name it",
            [FieldError("$.target", "required for this model type (here or on the model)")],
        )
    features = body.features or model.features
    if features is None:
        if columns is None:
            raise InvalidInput(
                "name the features to train on",
                [FieldError("$.features", "required when training from a dataset")],
            )
        features = [c for c in columns if c != target]
    if target is not None and target in features:
        raise InvalidInput(
            "the target cannot also be a feature",
            [FieldError("$.features", f"contains the target '{target}'")],
        )
    if not features:
        raise InvalidInput("no feature columns", [FieldError("$.features", "is empty")])
    return list(features), target


def _require_columns(columns: Sequence[str], needed: Sequence[str]) -> None:
    present = set(columns)
    missing = [c for c in needed if c not in present]
    if missing:
        raise InvalidInput(
            f"the data lacks column(s) {', '.join(repr(c) for c in missing)}",
            [FieldError("$.data", f"missing column '{c}'") for c in missing],
        )
