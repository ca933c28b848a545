"""How a job's run can end other than by succeeding."""

from __future__ import annotations


class JobLost(Exception):
    """The job is no longer ours to finish: cancelled, deleted, or taken by another worker."""


class RetryLater(Exception):
    """An infrastructure failure; the job went back to `queued` and should run again."""

    def __init__(self, attempt: int) -> None:
        super().__init__(f"attempt {attempt} failed")
        self.attempt = attempt
