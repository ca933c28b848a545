"""Token buckets in Redis, one per caller, shared by every api replica.

One Lua script does the whole decision: read the bucket, refill it for the time elapsed, take a
token or refuse, and write it back. Redis runs a script alone, so concurrent requests on any
number of replicas can neither both take the last token nor lose a refill; the clock is Redis's
own (`TIME`), so replicas with skewed clocks agree; and it costs one round trip (`EVALSHA`),
shared by the takes of one process that arrive together (see `TokenBuckets`).

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

import asyncio
import dataclasses
import math
from typing import Any

from redis.exceptions import NoScriptError

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
    """`take(key)` for every request of one caller; `redis` is a `redis.asyncio` client.

    Concurrent takes share round trips: while one batch is on its way to Redis, the takes that
    arrive meanwhile wait and then go together as one pipeline (each still its own script
    call, so each decision stays atomic). A lone take goes at once, so an idle api pays one
    round trip; a busy one pays a fraction of the client's per-command cost, and holds one
    Redis connection instead of one per request in flight. `timeout` (seconds) bounds each
    round trip, so a stalled Redis fails the waiting takes instead of holding the next ones.
    """

    def __init__(
        self, redis: Any, rate_per_second: float, burst: int, timeout: float | None = None
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.burst = burst
        self.interval_us = 1_000_000 / rate_per_second
        self.timeout = timeout
        self._redis = redis
        self._script = redis.register_script(_TAKE)
        self._waiting: list[tuple[str, asyncio.Future[Any]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def take(self, key: str) -> Decision:
        """Takes one token from `key`'s bucket; raises the client's errors (Redis down) and
        `TimeoutError`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_while_waiting())
        try:
            allowed, remaining, wait_us = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.exception()  # answered as the caller gave up: mark the outcome as seen
            raise
        return Decision(bool(allowed), int(remaining), int(wait_us) / 1_000_000)

    async def _send_while_waiting(self) -> None:
        try:
            while self._waiting:
                # A take whose caller gave up (its own timeout) is not sent.
                batch = [(key, f) for key, f in self._waiting if not f.done()]
                self._waiting = []
                if batch:
                    await self._send(batch)
        finally:
            self._sending = None

    async def _send(self, batch: list[tuple[str, asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._run([key for key, _ in batch])
        except Exception as exc:  # every waiting caller gets the outage, none is lost
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # the api is stopping: nobody is left waiting forever
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _run(self, keys: list[str]) -> list[Any]:
        args = (self.burst, repr(self.interval_us))
        if len(keys) == 1:  # the script object loads the script when Redis lacks it
            return [await self._script(keys=keys, args=args)]
        results = await self._pipeline(keys, args)
        if any(isinstance(r, NoScriptError) for r in results):
            # Redis restarted and forgot the script: a NOSCRIPT call did not run, so it is
            # sent again, once the script is loaded.
            await self._redis.script_load(_TAKE)
            again = iter(
                await self._pipeline(
                    [k for k, r in zip(keys, results, strict=True) if isinstance(r, NoScriptError)],
                    args,
                )
            )
            results = [next(again) if isinstance(r, NoScriptError) else r for r in results]
        failed = next((r for r in results if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed
        return results

    async def _pipeline(self, keys: list[str], args: tuple[Any, ...]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.evalsha(self._script.sha, 1, key, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results
