"""How a job's run ends other than by succeeding, as the domain sees it."""

from __future__ import annotations


class JobLost(Exception):
    """The job is no longer ours to finish: cancelled, deleted, or taken by another worker."""


class GiveUp(Exception):
    """The job cannot succeed; it is marked failed with this error and not retried."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
