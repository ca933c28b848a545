"""Token buckets in Redis, one per caller, shared by every api replica.

One Lua script does the whole decision: read the bucket, refill it for the time elapsed, take a
token or refuse, and write it back. Redis runs a script alone, so concurrent requests on any
number of replicas can neither both take the last token nor lose a refill; the clock is Redis's
own (`TIME`), so replicas with skewed clocks agree; and it costs one round trip (`EVALSHA`).

A bucket is one number: the moment it will be full again (`full_at`, microseconds of Redis's
clock). Its level now is `burst - (full_at - now) / interval` tokens, where `interval` is the time
one token takes to come back (`1 / rate`); taking a token pushes `full_at` one interval later.
This is the token bucket written as GCRA: no separate level and timestamp to keep consistent,
and the key expires exactly when the bucket is full again, which is the same as no key, so an
idle caller leaves nothing behind in Redis.

Why not a library: the well-kept `limits` package offers fixed-window, moving-window and
sliding-window counters but no token bucket with a burst, answers "allowed?" and "how many
left?" with separate calls, and would bring its own Redis connection handling next to the
client the job queue already holds. The script is short enough to read in full below.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

_TAKE = """
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local full_at = tonumber(redis.call('GET', KEYS[1]) or 0)
local debt = math.max(full_at - now, 0)
local capacity = burst * interval
if debt + interval > capacity then
  return {0, 0, math.ceil(debt + interval - capacity)}
end
debt = debt + interval
-- Numbers are formatted by hand: Lua would write 1.7e+15 and lose the microseconds.
redis.call('SET', KEYS[1], string.format('%.0f', now + debt),
           'PX', string.format('%.0f', math.ceil(debt / 1000)))
local remaining = math.floor((capacity - debt) / interval + 1e-9)
local next_token = debt % interval
if next_token < 1 then next_token = interval end
return {1, remaining, math.ceil(next_token)}
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """One request's outcome: whether it may go on, the whole tokens left after it, and the
    seconds until the next token comes back (when refused, until it may retry)."""

    allowed: bool
    remaining: int
    wait_seconds: float

    @property
    def wait_whole_seconds(self) -> int:
        """Rounded up, never 0 for a refusal: `Retry-After` must not invite an instant retry."""
        whole = math.ceil(self.wait_seconds - 1e-9)
        return max(whole, 1) if not self.allowed else max(whole, 0)


class TokenBuckets:
    """`take(key)` for every request of one caller; `redis` is a `redis.asyncio` client."""

    def __init__(self, redis: Any, rate_per_second: float, burst: int) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.burst = burst
        self.interval_us = 1_000_000 / rate_per_second
        self._script = redis.register_script(_TAKE)

    async def take(self, key: str) -> Decision:
        """Takes one token from `key`'s bucket; raises the client's errors (Redis down)."""
        allowed, remaining, wait_us = await self._script(
            keys=[key], args=[self.burst, repr(self.interval_us)]
        )
        return Decision(bool(allowed), int(remaining), int(wait_us) / 1_000_000)
