"""What one attempt's answer means for its delivery, and when the next attempt is due.

A 2xx ends a delivery as delivered. A 5xx, 408, 429, a timeout or a connection that was refused,
reset or broken is worth another try, after `backoff_seconds * 2**(attempts - 1)` capped at
`max_backoff_seconds`, times a jitter between 0.5 and 1.5 (so that receivers coming back from an
outage are not hit by every retry at once), unless that would fall after the delivery's
`retry_hours` are over: then it has failed. Any other answer (3xx, since redirects are never
followed; other 4xx) fails it at once: the receiver said no, and asking again would not change it.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.settings import WebhookSettings

RETRY_STATUSES = frozenset({408, 429})


class Outcome(enum.StrEnum):
    delivered = "delivered"
    retry = "retry"
    failed = "failed"


@dataclass(frozen=True)
class Answer:
    """One attempt as the receiver answered it: a status code, or an error and whether a later
    attempt might succeed."""

    status_code: int | None = None
    error: str | None = None
    transient: bool = False

    def outcome(self) -> Outcome:
        if self.status_code is None:
            return Outcome.retry if self.transient else Outcome.failed
        if 200 <= self.status_code < 300:
            return Outcome.delivered
        if self.status_code >= 500 or self.status_code in RETRY_STATUSES:
            return Outcome.retry
        return Outcome.failed


def backoff(attempts: int, settings: WebhookSettings, jitter: float) -> timedelta:
    """The wait after the `attempts`-th attempt (1 for the first)."""
    doublings = min(max(attempts - 1, 0), 62)  # past the cap long before; keeps the float finite
    base = min(settings.backoff_seconds * 2**doublings, settings.max_backoff_seconds)
    return timedelta(seconds=base * jitter)


def next_attempt(
    attempts: int,
    created_at: datetime,
    now: datetime,
    settings: WebhookSettings,
    jitter: float | None = None,
) -> datetime | None:
    """When to try again after `attempts` attempts, or None once `retry_hours` are over."""
    factor = random.uniform(0.5, 1.5) if jitter is None else jitter
    due = now + backoff(attempts, settings, factor)
    if due > created_at + timedelta(hours=settings.retry_hours):
        return None
    return due
