"""Micro-batching: concurrent predictions for one (model, version, output) share estimator calls.

At most `concurrency` estimator calls run at a time, over all lanes (one lane per model, version
and output). A request that finds a free thread runs at once, alone, so a lone request never
waits; requests that arrive while every thread is busy queue in their lane and leave together,
as one stacked call of up to `max_rows` rows, as soon as a thread frees. Under load this turns many
small calls (whose cost is mostly per-call overhead: a forest walks every tree once per call)
into few large ones. `max_wait` > 0 additionally holds a call that found a free slot for up to
that long, hoping for company; it is 0 by default, because the measurements say the queueing
under load already gives most of the gain.

Each request's rows are validated on their own, so one request's bad row fails that request
only; results are split back in order.

A small request (at most `INLINE_MAX_ROWS` rows) for a lane whose last lone call took less than
`INLINE_BELOW` seconds runs on the event loop itself when it is the only request being served
and no thread is busy: handing a call that short to a thread costs more than the call (a
wake-up of the thread, and of the loop through its self-pipe, besides the futures). Under
concurrency the threads win instead, because queued requests share calls, and a call on the
loop would run alone. A lane's first call, any larger request, and every request while others
are served go to the threads as above, so a slow model (a forest) still batches and never
blocks the loop. Measured with `python -m bench overhead` (see `INLINE_BELOW`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# prepare(rows of one request) -> feature matrix;  apply(stacked matrix) -> per-row results,
# anything that slices by rows (a list, a `Prediction`)
Prepare = Callable[[Any], np.ndarray]
Apply = Callable[[np.ndarray], Any]

# Chosen with `python -m bench overhead` (bench/RESULTS.md): iris LogisticRegression, 1 row, one
# api process, wrk on the same 2 shared, noisy cores; medians of the rounds, api CPU per request
# the steadiest figure. This tree against itself with INLINE_BELOW = 0 (every call on a thread):
# c1 p50 0.74 against 0.99 ms, CPU 761 against 973 µs per request; at c64 (where this rule
# sends requests to the threads) CPU 521 against 491 µs, req/s 0.51 against 0.57 × hello,
# within the rounds' spread. Tried and dropped: at c64 every request on the loop, one call
# each (662 against 555 µs), or one call per turn of the loop (741 against 659 µs, worse p50).
INLINE_BELOW = 0.0005
INLINE_MAX_ROWS = 16
# Lanes whose last lone call time is remembered; past it the memory starts again (a lane's
# next call then goes to a thread once, and is timed there).
REMEMBERED_LANES = 4096


class InFlight:
    """Whether a request is served alone, as the transport sees it: how many requests are not
    yet answered, and whether requests came from another connection lately. The count alone
    cannot tell: under load each request may run from arrival to answer without yielding (on
    the loop), so the others wait unseen in the server; but they come from other connections.
    """

    def __init__(self, window: float = 0.05) -> None:
        self.count = 0
        self.window = window
        self._last_client: object = None
        self._mixed_until = 0.0

    def arrived(self, client: object) -> None:
        self.count += 1
        if client != self._last_client:
            if self._last_client is not None:
                self._mixed_until = time.monotonic() + self.window
            self._last_client = client

    @property
    def alone(self) -> bool:
        return self.count <= 1 and time.monotonic() >= self._mixed_until


# Set by the transport (`http/edge.py`) for each request it serves; without it (a caller outside
# any request) a call is taken to be alone.
in_flight: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "in_flight", default=None
)


@dataclass
class _Request:
    rows: Any
    future: asyncio.Future[Any]
    size: int
    taken: bool = False  # in a call (on a thread), no longer waiting


@dataclass
class _Lane:
    max_rows: int
    prepare: Prepare
    apply: Apply
    active: int = 0
    pending: list[_Request] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """`busy` counts estimator calls from launch until their thread returns, including calls
    whose callers gave up (timed out): the thread is still working, so no new call is started
    in its place. Calls are launched only onto a free thread, never queued in the pool, so the
    pool's own queue stays empty and `waiting` (requests in lanes) is all the backlog there is.
    """

    def __init__(
        self,
        pool: concurrent.futures.Executor,
        concurrency: int,
        max_rows: int,
        max_wait: float,
        inline_below: float = INLINE_BELOW,
    ) -> None:
        self.pool = pool
        self.concurrency = concurrency
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._lanes: dict[Hashable, _Lane] = {}
        # Holding a lone call for company (`max_wait`) and running it at once inline exclude
        # each other: with `max_wait` set, nothing runs inline.
        self.inline_below = 0.0 if max_wait > 0 else inline_below
        self._lone_call_seconds: dict[Hashable, float] = {}
        self.calls = 0  # estimator calls made, for tests and metrics
        self.requests = 0
        self.busy = 0  # threads running an estimator call, until the call really returns
        self.waiting = 0  # requests queued in lanes, not yet in a call
        self.inline = 0  # calls run on the event loop, for tests and metrics

    @property
    def saturated(self) -> bool:
        return self.busy >= self.concurrency

    async def submit(
        self,
        key: Hashable,
        rows: Any,
        size: int,
        prepare: Prepare,
        apply: Apply,
        max_rows: int | None = None,
    ) -> Any:
        """`max_rows` overrides the batcher's limit for this lane (set per model type)."""
        if self._runs_inline(key, size):
            return self._run_inline(key, rows, prepare, apply)
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(max_rows or self.max_rows, prepare, apply)
        request = _Request(rows, loop.create_future(), size)
        lane.pending.append(request)
        self.requests += 1
        self.waiting += 1
        if not self.saturated:
            if self.max_wait > 0 and sum(r.size for r in lane.pending) < lane.max_rows:
                if lane.timer is None:
                    lane.timer = loop.call_later(self.max_wait, self._launch, key, lane)
            else:
                self._launch(key, lane)
        try:
            return await request.future
        finally:
            if not request.taken:  # its caller gave up while it waited: it waits no more
                request.taken = True
                lane.pending.remove(request)
                self.waiting -= 1
                self._drop_if_idle(key, lane)

    def _runs_inline(self, key: Hashable, size: int) -> bool:
        if self.busy or size > INLINE_MAX_ROWS or key in self._lanes:
            return False
        if self._lone_call_seconds.get(key, self.inline_below) >= self.inline_below:
            return False
        served = in_flight.get()
        return served is None or served.alone

    def _run_inline(self, key: Hashable, rows: Any, prepare: Prepare, apply: Apply) -> Any:
        self.requests += 1
        self.calls += 1
        self.inline += 1
        started = time.perf_counter()
        outcome = _run_batch([rows], prepare, apply)[0]
        self._lone_call_seconds[key] = time.perf_counter() - started
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _launch(self, key: Hashable, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if self.saturated:
            return  # launched when a thread frees (`_finished`)
        batch = self._take(lane)
        if not batch:
            self._drop_if_idle(key, lane)
            return
        lane.active += 1
        self.busy += 1
        self.calls += 1
        if self._lanes.get(key) is lane:  # to the end: the order of last launch
            self._lanes[key] = self._lanes.pop(key)
        future = asyncio.get_running_loop().run_in_executor(
            self.pool, _run_timed, [r.rows for r in batch], lane.prepare, lane.apply
        )
        future.add_done_callback(lambda done: self._finished(key, lane, batch, done))

    def _take(self, lane: _Lane) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        while lane.pending and (not batch or rows + lane.pending[0].size <= lane.max_rows):
            request = lane.pending.pop(0)
            request.taken = True
            self.waiting -= 1
            batch.append(request)
            rows += request.size
        return batch

    def _finished(
        self,
        key: Hashable,
        lane: _Lane,
        batch: list[_Request],
        done: asyncio.Future[tuple[float, list[Any]]],
    ) -> None:
        lane.active -= 1
        self.busy -= 1
        error = done.exception()
        results = None
        if error is None:
            seconds, results = done.result()
            if len(batch) == 1 and batch[0].size <= INLINE_MAX_ROWS:
                self._remember(key, seconds)
        for i, request in enumerate(batch):
            if request.future.done():  # its caller gave up
                continue
            if error is not None:
                request.future.set_exception(error)
            else:
                assert results is not None
                outcome = results[i]
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)
        # The freed thread goes to the lane that has waited longest since its last call (lanes
        # are kept in that order), so one busy model cannot starve the others.
        self._drop_if_idle(key, lane)
        for other_key, other in list(self._lanes.items()):
            if other.pending and other.timer is None:
                self._launch(other_key, other)
                return

    def _remember(self, key: Hashable, seconds: float) -> None:
        if len(self._lone_call_seconds) >= REMEMBERED_LANES:
            self._lone_call_seconds.clear()
        self._lone_call_seconds[key] = seconds

    def _drop_if_idle(self, key: Hashable, lane: _Lane) -> None:
        idle = not lane.pending and lane.active == 0 and lane.timer is None
        if idle and self._lanes.get(key) is lane:
            del self._lanes[key]


def _run_timed(parts: list[Any], prepare: Prepare, apply: Apply) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    outcomes = _run_batch(parts, prepare, apply)
    return time.perf_counter() - started, outcomes


def _run_batch(parts: list[Any], prepare: Prepare, apply: Apply) -> list[Any]:
    """In a pool thread: validate each request, stack the valid ones, one call, split back."""
    outcomes: list[Any] = [None] * len(parts)
    matrices: list[np.ndarray] = []
    owners: list[int] = []
    for i, rows in enumerate(parts):
        try:
            matrices.append(prepare(rows))
            owners.append(i)
        except Exception as exc:  # this request's own input problem; the others go on
            outcomes[i] = exc
    if not matrices:
        return outcomes
    stacked = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
    try:
        values = apply(stacked)
    except Exception as exc:
        if len(matrices) == 1:
            outcomes[owners[0]] = exc
            return outcomes
        # One request's rows made the whole call fail: retry each alone to find whose.
        for i, matrix in zip(owners, matrices, strict=True):
            try:
                outcomes[i] = apply(matrix)
            except Exception as own:
                outcomes[i] = own
        return outcomes
    if len(owners) == 1:
        outcomes[owners[0]] = values
        return outcomes
    start = 0
    for i, matrix in zip(owners, matrices, strict=True):
        outcomes[i] = values[start : start + len(matrix)]
        start += len(matrix)
    return outcomes
