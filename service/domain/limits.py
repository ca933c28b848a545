"""Refusals by a fair-use limit, in the domain's words; `http/problems.py` maps them to HTTP.

`limit` names the limit (the label of the `limit_refusals_total` metric), so operators see
which one callers run into.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.domain.errors import DomainError, FieldError


class OverLimit(DomainError):
    """A request beyond one of the configured limits."""

    def __init__(self, limit: str, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail, errors)
        self.limit = limit


class TooBusy(OverLimit):
    """The caller's tenant uses all it may at once (a 429); it may retry after `retry_after`
    seconds, when some of its work will likely have finished."""

    def __init__(self, limit: str, detail: str, retry_after: int) -> None:
        super().__init__(limit, detail)
        self.retry_after = retry_after


class TooLarge(OverLimit):
    """One request asks for more than any single request may (a 413); `errors` name the field."""


# A job takes seconds to hours; asking again sooner than this would only be refused again.
ACTIVE_JOBS_RETRY_SECONDS = 10


def too_many_active_jobs(limit: int) -> TooBusy:
    return TooBusy(
        "active_jobs",
        f"the tenant already has {limit} queued or running jobs, the most it may have; "
        "retry when one has finished",
        ACTIVE_JOBS_RETRY_SECONDS,
    )


def too_many_rows(field: str, rows: int, limit: int) -> TooLarge:
    return TooLarge(
        "predict_rows",
        f"at most {limit} rows per prediction; split the request",
        [FieldError(field, f"has {rows} rows, more than the {limit} allowed")],
    )
