"""Micro-batching: concurrent predictions for one (model, version, output) share estimator calls.

Each lane (one per model, version and output) runs at most `concurrency` estimator calls at a
time. A request that finds a free slot runs at once, alone, so a lone request never waits;
requests that arrive while every slot is busy queue in the lane and leave together, as one
stacked call of up to `max_rows` rows, as soon as a slot frees. Under load this turns many
small calls (whose cost is mostly per-call overhead: a forest walks every tree once per call)
into few large ones. `max_wait` > 0 additionally holds a call that found a free slot for up to
that long, hoping for company; it is 0 by default, because the measurements say the queueing
under load already gives most of the gain.

Each request's rows are validated on their own, so one request's bad row fails that request
only; results are split back in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# prepare(rows of one request) -> feature matrix;  apply(stacked matrix) -> per-row results
Prepare = Callable[[Any], np.ndarray]
Apply = Callable[[np.ndarray], Sequence[Any]]


@dataclass
class _Request:
    rows: Any
    future: asyncio.Future[list[Any]]
    size: int


@dataclass
class _Lane:
    max_rows: int
    active: int = 0
    pending: list[_Request] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(
        self,
        pool: concurrent.futures.Executor,
        concurrency: int,
        max_rows: int,
        max_wait: float,
    ) -> None:
        self.pool = pool
        self.concurrency = concurrency
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._lanes: dict[Hashable, _Lane] = {}
        self.calls = 0  # estimator calls made, for tests and metrics
        self.requests = 0

    async def submit(
        self,
        key: Hashable,
        rows: Any,
        size: int,
        prepare: Prepare,
        apply: Apply,
        max_rows: int | None = None,
    ) -> list[Any]:
        """`max_rows` overrides the batcher's limit for this lane (set per model type)."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.setdefault(key, _Lane(max_rows=max_rows or self.max_rows))
        request = _Request(rows, loop.create_future(), size)
        lane.pending.append(request)
        self.requests += 1
        if lane.active < self.concurrency:
            if self.max_wait > 0 and sum(r.size for r in lane.pending) < lane.max_rows:
                if lane.timer is None:
                    lane.timer = loop.call_later(
                        self.max_wait, self._launch, key, lane, prepare, apply
                    )
            else:
                self._launch(key, lane, prepare, apply)
        return await request.future

    def _launch(self, key: Hashable, lane: _Lane, prepare: Prepare, apply: Apply) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        batch = self._take(lane)
        if not batch:
            return
        lane.active += 1
        self.calls += 1
        future = asyncio.get_running_loop().run_in_executor(
            self.pool, _run_batch, [r.rows for r in batch], prepare, apply
        )
        future.add_done_callback(
            lambda done: self._finished(key, lane, batch, done, prepare, apply)
        )

    def _take(self, lane: _Lane) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        while lane.pending and (not batch or rows + lane.pending[0].size <= lane.max_rows):
            request = lane.pending.pop(0)
            if request.future.done():  # its caller gave up (timeout)
                continue
            batch.append(request)
            rows += request.size
        return batch

    def _finished(
        self,
        key: Hashable,
        lane: _Lane,
        batch: list[_Request],
        done: asyncio.Future[list[Any]],
        prepare: Prepare,
        apply: Apply,
    ) -> None:
        lane.active -= 1
        error = done.exception()
        results = None if error is not None else done.result()
        for i, request in enumerate(batch):
            if request.future.done():
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
        if lane.pending:
            self._launch(key, lane, prepare, apply)
        elif lane.active == 0:
            self._lanes.pop(key, None)


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
                outcomes[i] = list(apply(matrix))
            except Exception as own:
                outcomes[i] = own
        return outcomes
    start = 0
    for i, matrix in zip(owners, matrices, strict=True):
        outcomes[i] = list(values[start : start + len(matrix)])
        start += len(matrix)
    return outcomes
