"""The per-caller request rate, checked by the dispatcher right after authentication.

Each caller (tenant + token `sub`) has a token bucket of `limits.burst` tokens refilled at
`limits.rate_per_second`, kept in Redis (`service/limits/buckets.py`) so every api replica
draws from the same one. A request without a token is a 429 problem with `Retry-After`; every
checked response, the 429 included, carries the IETF `RateLimit-Policy` and `RateLimit` fields
(draft-ietf-httpapi-ratelimit-headers, structured-field form):

    RateLimit-Policy: "default";q=<burst>;w=<seconds to refill an empty bucket>
    RateLimit: "default";r=<tokens left>;t=<seconds until the next token>

except one whose `Retry-After` has another cause (the active-jobs quota, an outage): the draft
wants `t` and `Retry-After` to name the same moment, and a client must follow `Retry-After`.

Redis down or slow fails open: the limit protects fairness, not data, and Redis holds nothing
of record (PostgreSQL does; the active-jobs quota, which guards the expensive work, is counted
there). A request whose check fails or takes longer than `limits.rate_check_timeout_ms` goes on
unchecked and without the fields, counted by `rate_limiter_failures_total`; for the next second
requests skip Redis altogether (counted as `skipped`), so an outage costs one timeout per
second and replica rather than one per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from redis.exceptions import RedisError
from starlette.types import Scope

from service.auth.principal import Principal
from service.http.metrics import ApiMetrics
from service.http.problems import HttpProblem
from service.limits.buckets import Decision, TokenBuckets
from service.settings import LimitsSettings

log = logging.getLogger(__name__)

# Where the dispatcher leaves the fields for `edge.Edge` to add to the response.
SCOPE_KEY = "models_service.rate_limit_fields"
# After a failed check, Redis is left alone this long (seconds).
PAUSE_AFTER_FAILURE = 1.0


class RateLimits:
    """The limiter of one api process; `None` in `Services` when the limit is off."""

    def __init__(
        self, redis: Any, settings: LimitsSettings, key_prefix: str, metrics: ApiMetrics
    ) -> None:
        self.timeout = settings.rate_check_timeout_ms / 1000
        self.buckets = TokenBuckets(
            redis, settings.rate_per_second, settings.burst, timeout=self.timeout
        )
        self.key_prefix = key_prefix
        self.metrics = metrics
        window = max(1, math.ceil(settings.burst / settings.rate_per_second))
        self.policy = f'"default";q={settings.burst};w={window}'.encode()
        self._paused_until = 0.0

    @staticmethod
    def from_settings(
        redis: Any, settings: LimitsSettings, queue_name: str, metrics: ApiMetrics
    ) -> RateLimits | None:
        """None when `rate_per_second` is 0, so an unlimited request costs no round trip."""
        if settings.rate_per_second <= 0:
            return None
        # Under the queue's name, so deployments sharing one Redis keep separate buckets.
        return RateLimits(redis, settings, f"{queue_name}:rate:", metrics)

    async def check(self, scope: Scope, who: Principal) -> None:
        """Takes a token for `who` or raises the 429; leaves the fields in `scope`."""
        decision = await self._take(f"{self.key_prefix}{who.tenant}:{who.sub}")
        if decision is None:
            return
        wait = decision.wait_whole_seconds
        scope[SCOPE_KEY] = (
            str(wait).encode(),
            [
                (b"ratelimit-policy", self.policy),
                (b"ratelimit", f'"default";r={decision.remaining};t={wait}'.encode()),
            ],
        )
        if not decision.allowed:
            self.metrics.limit_refusals.labels("rate").inc()
            raise HttpProblem(
                429,
                f"too many requests from this caller; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    async def _take(self, key: str) -> Decision | None:
        if time.monotonic() < self._paused_until:
            self.metrics.rate_limiter_failures.labels("skipped").inc()
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await self.buckets.take(key)
        except (RedisError, OSError, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            self.metrics.rate_limiter_failures.labels(reason).inc()
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            log.warning(
                "rate limiter unavailable; requests go on unchecked",
                extra={"error": str(exc) or type(exc).__name__},
            )
            return None
