"""The child-process side of a training job: bytes in, bytes out.

The worker sends a msgpack `FitRequest` (training batches as stored, and for an incremental
update the previous artifact, already verified against its HMAC tag); the child fits and
replies with a msgpack `FitOutcome` holding the new artifact's joblib bytes or the error. On the
way it notes each phase it starts (`Phase` names, see `estimators/phases.py`). Importing this
module warms the model-type discovery, so forkserver children start ready.
"""

from __future__ import annotations

import errno
import io
import traceback
from typing import Any

import joblib
import msgspec

from service.artifacts.signing import dumps
from service.domain import batches
from service.domain.errors import DomainError
from service.domain.job_specs import FittedVersion, PreviousVersion
from service.estimators.catalogue import load_catalogue
from service.estimators.limits import SettingLimits
from service.estimators.phases import Phase, PhaseReport
from service.estimators.predicting import offered_outputs
from service.estimators.table import Table
from service.estimators.training import FitResult, fit_model, library_versions, update_model
from service.worker.child import Note
from service.worker.limits import RESOURCE_LIMIT


class FitRequest(msgspec.Struct, kw_only=True):
    model_type: str
    settings: dict[str, Any]
    features: list[str]
    target: str | None
    parameters: dict[str, Any]
    batches: list[bytes]
    previous: bytes | None = None  # the current version's artifact, for partial_fit
    previous_meta: PreviousVersion | None = None
    eval_fraction: float = 0.2
    eval_min_rows: int = 20
    eval_max_rows: int | None = None
    plugins: list[str] = msgspec.field(default_factory=list)
    threads: int | None = None  # the cap on BLAS/OpenMP threads and `n_jobs`
    limits: dict[str, int] = msgspec.field(default_factory=dict)  # `[models.limits]`


class FitOutcome(FittedVersion, kw_only=True):
    """The child's reply: the fitted version when `ok`, else why it failed."""

    ok: bool
    error_type: str = ""
    message: str = ""
    limit: str = ""  # with error_type "resource_limit": "memory" or "processes"


class _Previous(PreviousVersion, frozen=True, kw_only=True):
    """The current version, in the shape `update_model` expects (`FittedModel`)."""

    estimator: Any


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(FitRequest)

load_catalogue()  # warm the discovery (about two seconds) once, in the forkserver


def fit_in_child(raw: bytes, note: Note) -> bytes:
    def on_phase(phase: Phase) -> None:
        note(phase.value.encode())

    try:
        return _fitted(_decoder.decode(raw), on_phase)
    except Exception as exc:
        limit = _limit_hit(exc)
        if limit is None:
            raise
        # Most of what the fit held is garbage now: enough room to reply.
        return _encoder.encode(FitOutcome(ok=False, error_type=RESOURCE_LIMIT, limit=limit))


def _fitted(request: FitRequest, on_phase: PhaseReport) -> bytes:
    try:
        result = _fit(request, on_phase)
    except DomainError as exc:
        if _limit_hit(exc) is not None:
            raise
        return _encoder.encode(
            FitOutcome(ok=False, error_type=type(exc).__name__, message=_describe(exc))
        )
    except Exception as exc:  # deterministic, so failing beats retrying; the worker's log has why
        if _limit_hit(exc) is not None:
            raise
        traceback.print_exc()
        message = "training failed because of an internal error; it has been logged"
        return _encoder.encode(FitOutcome(ok=False, error_type="InternalError", message=message))
    return _encoder.encode(
        FitOutcome(
            ok=True,
            artifact=dumps(result.estimator),
            features=result.features,
            feature_kinds={k: str(v) for k, v in result.feature_kinds.items()},
            target=result.target,
            classes=result.classes,
            outputs=offered_outputs(result.estimator),
            metrics=dict(result.metrics),
            rows=result.rows,
            library_versions=library_versions(),
            warnings=result.warnings,
            settings=result.settings_used,
        )
    )


def _fit(request: FitRequest, on_phase: PhaseReport) -> FitResult:
    data = batches.concat([batches.decode(b) for b in request.batches])
    table = Table(data.columns, data.rows, "$.data", "records")
    if request.previous is not None and request.previous_meta is not None:
        # The parent checked this artifact's HMAC tag before sending it here.
        estimator = joblib.load(io.BytesIO(request.previous))
        meta = msgspec.structs.asdict(request.previous_meta)
        previous = _Previous(estimator=estimator, **meta)
        return update_model(
            previous,
            table,
            fit_params=request.parameters,
            eval_fraction=request.eval_fraction,
            eval_min_rows=request.eval_min_rows,
            eval_max_rows=request.eval_max_rows,
            threads=request.threads,
            on_phase=on_phase,
        )
    return fit_model(
        request.model_type,
        request.settings,
        request.features,
        request.target,
        table,
        catalogue=load_catalogue(request.plugins, SettingLimits.of(request.limits)),
        fit_params=request.parameters,
        eval_fraction=request.eval_fraction,
        eval_min_rows=request.eval_min_rows,
        eval_max_rows=request.eval_max_rows,
        threads=request.threads,
        on_phase=on_phase,
    )


def _limit_hit(exc: BaseException) -> str | None:
    """Which child limit `exc` (or an exception it came from) shows was hit, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return "memory"
        if isinstance(current, RuntimeError) and "can't start new thread" in str(current):
            return "processes"
        if isinstance(current, OSError) and current.errno == errno.EAGAIN:
            return "processes"  # fork or clone refused
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: DomainError) -> str:
    details = "; ".join(f"{e.loc}: {e.msg}" for e in exc.errors[:20])
    return f"{exc.detail} ({details})" if details else exc.detail
