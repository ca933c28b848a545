"""Live traffic figures per model version, summed across every api replica in Redis.

Each api process counts in its own memory on the predict hot path (`record*`: a dict lookup and
a few integer adds, no await, no I/O) and a background task adds those counts to Redis once per
`flush_seconds` with one pipeline. Redis therefore holds, per (tenant, model, traffic revision,
version), one hash of plain counters that every replica increments:

    {prefix}{tenant}:{model_id}:{revision}:{version}    requests errors rows compared agreeing
                                                         dropped b<i>... role
    {prefix}{tenant}:{model_id}:{revision}:versions     the set of versions that have a hash

Latency is a histogram of fixed log-spaced buckets rather than samples, because counts in the
same buckets add up exactly across replicas while percentiles of samples do not. A new traffic
revision starts fresh keys; the old ones are left to expire (`ttl_seconds`, refreshed by every
flush that writes them).

Redis is not the record of anything here, so an outage loses no request: a failed flush puts its
counts back into memory (per key and version, so memory stays bounded however long the outage
lasts), the next flush delivers them, and a warning is logged once per outage. A flush whose
reply was lost after Redis applied it is counted again; figures are approximate in that rare case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from bisect import bisect_right
from typing import Literal

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.domain.errors import Unavailable

log = logging.getLogger(__name__)

FiguresKey = tuple[str, int, int]  # (tenant, model id, traffic revision)
Role = Literal["split", "shadow"]

# Bucket 0 holds latencies under LOWEST; bucket i (1..) holds [LOWEST·G^(i-1), LOWEST·G^i); the
# last one everything from about 130 s up. Changing these changes what a stored `b<i>` means:
# change the key prefix with them.
LOWEST_SECONDS = 50e-6
GROWTH = 1.2
_HIGHEST_SECONDS = 120.0
_EDGES = tuple(
    LOWEST_SECONDS * GROWTH**i
    for i in range(math.ceil(math.log(_HIGHEST_SECONDS / LOWEST_SECONDS, GROWTH)) + 1)
)
BUCKETS = len(_EDGES) + 1

_COUNTERS = ("requests", "errors", "rows", "compared", "agreeing", "dropped")


class VersionFigures(msgspec.Struct):
    """What `GET /models/{name}/traffic` shows for one version, summed over every replica."""

    version: int
    role: Role
    requests: int
    errors: int
    p50_ms: float | None  # None when no requests
    p99_ms: float | None
    rows: int  # rows predicted
    agreement: float | None  # shadows only: agreeing rows / compared rows; None if none compared
    dropped: int = 0  # shadows only: requests skipped because the shadow queue was full


class _Pending:
    """One version's counts not yet added to Redis."""

    __slots__ = ("role", "requests", "errors", "rows", "compared", "agreeing", "dropped", "buckets")

    def __init__(self, role: Role) -> None:
        self.role = role
        self.requests = self.errors = self.rows = 0
        self.compared = self.agreeing = self.dropped = 0
        self.buckets = [0] * BUCKETS

    def counters(self) -> tuple[int, ...]:
        return (self.requests, self.errors, self.rows, self.compared, self.agreeing, self.dropped)

    def merge(self, other: _Pending) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.rows += other.rows
        self.compared += other.compared
        self.agreeing += other.agreeing
        self.dropped += other.dropped
        for i, count in enumerate(other.buckets):
            self.buckets[i] += count


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a latency: a negative one (a clock step) is the fastest, a NaN
    the slowest."""
    return bisect_right(_EDGES, seconds)


def percentile_ms(buckets: list[int], fraction: float) -> float | None:
    """The nearest-rank percentile, reported as the upper edge of the bucket that holds it.

    So the figure is never below the true latency and at most 20% (`GROWTH`) above it, except
    at the ends: under 50 µs reads as 0.05 ms, and past the last edge (about 130 s) as that edge.
    """
    total = sum(buckets)
    if total == 0:
        return None
    rank = max(1, math.ceil(total * fraction))
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            edge = _EDGES[min(index, len(_EDGES) - 1)]
            return round(edge * 1000, 3)
    raise AssertionError("unreachable: the ranks add up to the total")


class TrafficFigures:
    """One api process's side of the figures: counts in memory, flushed to the shared hashes."""

    def __init__(
        self,
        redis: Redis,
        *,
        flush_seconds: float = 1.0,
        ttl_seconds: int = 7 * 86400,
        key_prefix: str = "models-service:traffic:",
        close_timeout: float = 2.0,
    ) -> None:
        self.redis = redis
        self.flush_seconds = flush_seconds
        self.ttl_seconds = ttl_seconds
        self.key_prefix = key_prefix
        self.close_timeout = close_timeout
        self._pending: dict[FiguresKey, dict[int, _Pending]] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing = False
        self._record_failed = False

    # The hot path. Each `record*` only finds (or, once per version and flush, creates) the
    # version's counts and adds to them. A bug here must not fail a prediction, so anything
    # unexpected is logged once and the figure is lost.

    def _counts(self, key: FiguresKey, version: int, role: Role) -> _Pending:
        versions = self._pending.get(key)
        if versions is None:
            versions = self._pending[key] = {}
        pending = versions.get(version)
        if pending is None:
            pending = versions[version] = _Pending(role)
        return pending

    def record(self, key: FiguresKey, version: int, seconds: float, rows: int, ok: bool) -> None:
        """Counts one request answered by a split version."""
        try:
            bucket = bucket_of(seconds)
            pending = self._counts(key, version, "split")
            pending.rows += rows  # first: what may raise goes before what cannot
            pending.requests += 1
            pending.errors += not ok
            pending.buckets[bucket] += 1
        except Exception:
            self._record_error()

    def record_shadow(
        self,
        key: FiguresKey,
        version: int,
        seconds: float,
        rows: int,
        ok: bool,
        compared: int,
        agreeing: int,
    ) -> None:
        """Counts one request a shadow version answered off the response path, and how many of
        its rows were compared with the answering version's and agreed."""
        try:
            bucket = bucket_of(seconds)
            pending = self._counts(key, version, "shadow")
            pending.rows += rows
            pending.compared += compared
            pending.agreeing += agreeing
            pending.requests += 1
            pending.errors += not ok
            pending.buckets[bucket] += 1
        except Exception:
            self._record_error()

    def record_dropped(self, key: FiguresKey, version: int) -> None:
        """Counts one request a shadow version never got because its queue was full."""
        try:
            self._counts(key, version, "shadow").dropped += 1
        except Exception:
            self._record_error()

    def _record_error(self) -> None:
        if not self._record_failed:
            self._record_failed = True
            log.exception("a traffic figure could not be counted; later ones may be lost too")

    # Delivery.

    async def start(self) -> None:
        """Starts flushing every `flush_seconds` in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._flush_forever(), name="traffic-figures")

    async def close(self) -> None:
        """Stops the background flushes and tries, for at most `close_timeout`, a last one."""
        if self._task is not None:
            # redis-py may turn a cancellation inside a pipeline into a connection error, which a
            # flush keeps quiet: the loop also stops on `_closing`, and the wait is bounded.
            self._closing = True
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self.close_timeout)
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.close_timeout):
                await self.flush()
        if self._pending:
            log.warning("traffic figures not delivered before shutdown are lost")

    async def _flush_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:
                log.exception("flushing traffic figures failed")

    async def flush(self) -> None:
        """Adds the counts recorded so far to Redis; on failure keeps them for the next flush.

        Flushes run one at a time, so when one returns everything recorded before it was called
        has been sent (or kept)."""
        async with self._lock:
            taken, self._pending = self._pending, {}
            if not taken:
                return
            try:
                await self._send(taken)
            except BaseException as exc:
                # Cancelled or failed: the counts go back, to be sent by a later flush.
                self._restore(taken)
                if not isinstance(exc, RedisError | OSError):
                    raise
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "traffic figures cannot reach Redis; they are kept and sent later",
                        extra={"error": str(exc) or type(exc).__name__},
                    )
                return
            if self._failing:
                self._failing = False
                log.info("traffic figures reach Redis again")

    async def _send(self, taken: dict[FiguresKey, dict[int, _Pending]]) -> None:
        # MULTI/EXEC: a flush is applied whole or not at all, so a failure is safe to retry.
        async with self.redis.pipeline(transaction=True) as pipe:
            for key, versions in taken.items():
                base = self._base(key)
                for version, pending in versions.items():
                    name = f"{base}{version}"
                    for field, value in zip(_COUNTERS, pending.counters(), strict=True):
                        if value:
                            pipe.hincrby(name, field, value)
                    for index, count in enumerate(pending.buckets):
                        if count:
                            pipe.hincrby(name, f"b{index}", count)
                    pipe.hset(name, "role", pending.role)
                    pipe.expire(name, self.ttl_seconds)
                pipe.sadd(f"{base}versions", *versions)
                pipe.expire(f"{base}versions", self.ttl_seconds)
            await pipe.execute()

    def _restore(self, taken: dict[FiguresKey, dict[int, _Pending]]) -> None:
        for key, versions in taken.items():
            for version, pending in versions.items():
                self._counts(key, version, pending.role).merge(pending)

    def _base(self, key: FiguresKey) -> str:
        tenant, model_id, revision = key
        return f"{self.key_prefix}{tenant}:{model_id}:{revision}:"

    # Reading.

    async def read(self, key: FiguresKey) -> dict[int, VersionFigures]:
        """Every version's figures for this traffic revision, this process's own counts included.

        Raises `Unavailable("redis")` (a 503) when Redis does not answer."""
        await self.flush()
        base = self._base(key)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.smembers(f"{base}versions")
                (members,) = await pipe.execute()
                versions = sorted(int(member) for member in members)
                for version in versions:
                    pipe.hgetall(f"{base}{version}")
                hashes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable("redis") from exc
        return {
            version: _figures(version, stored)
            for version, stored in zip(versions, hashes, strict=True)
            if stored  # expired since the set was read
        }


def _figures(version: int, stored: dict[bytes | str, bytes | str]) -> VersionFigures:
    # Bytes from the service's client; text from one made with `decode_responses=True`.
    fields = {_text(name): _text(value) for name, value in stored.items()}
    counts = {name: int(fields.get(name, 0)) for name in _COUNTERS}
    buckets = [int(fields.get(f"b{i}", 0)) for i in range(BUCKETS)]
    role: Role = "shadow" if fields.get("role") == "shadow" else "split"
    compared = counts["compared"]
    return VersionFigures(
        version=version,
        role=role,
        requests=counts["requests"],
        errors=counts["errors"],
        p50_ms=percentile_ms(buckets, 0.50),
        p99_ms=percentile_ms(buckets, 0.99),
        rows=counts["rows"],
        agreement=counts["agreeing"] / compared if compared else None,
        dropped=counts["dropped"],
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
