"""The batcher on its own: lone requests run at once, queued ones share calls within limits.

Estimator calls are held at a gate (a thread event) and the tests wait for the batcher's own
request counter, so the order of events never depends on timing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from service.serving.batching import Batcher
from tests.factories import wait_until

pytestmark = pytest.mark.anyio


class Recorder:
    """An `apply` that remembers the size of each call and can be held back."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()

    def apply(self, matrix: np.ndarray) -> Sequence[Any]:
        assert self.gate.wait(60), "the test never opened the gate"
        self.sizes.append(len(matrix))
        return list(matrix[:, 0] * 2)


def prepare(rows: Any) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64)


async def test_queued_requests_share_calls_up_to_the_lane_limit() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher = Batcher(pool, concurrency=1, max_rows=100, max_wait=0)
    recorder = Recorder()
    first = asyncio.ensure_future(batcher.submit("k", [[0.0]], 1, prepare, recorder.apply, 3))
    await wait_until(lambda: batcher.calls == 1, 10, "the first call to take the only slot")
    rest = [
        asyncio.ensure_future(batcher.submit("k", [[float(i)]], 1, prepare, recorder.apply, 3))
        for i in range(1, 8)
    ]
    await wait_until(lambda: batcher.requests == 8, 10, "the other seven requests to queue")
    assert batcher.calls == 1  # they queue behind the held call
    recorder.gate.set()
    results = await asyncio.gather(first, *rest)
    assert results == [[2.0 * i] for i in range(8)]
    assert recorder.sizes[0] == 1  # a lone request ran alone, at once
    assert max(recorder.sizes) == 3  # the per-type limit, not the global 100
    assert sum(recorder.sizes) == 8 and batcher.calls == len(recorder.sizes) < 8
    pool.shutdown()


async def test_a_request_that_breaks_the_batch_fails_alone() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher = Batcher(pool, concurrency=1, max_rows=100, max_wait=0)
    gate = threading.Event()

    def apply(matrix: np.ndarray) -> Sequence[Any]:
        assert gate.wait(60), "the test never opened the gate"
        if (matrix < 0).any():
            raise ValueError("negative input")
        return list(matrix[:, 0])

    blocker = asyncio.ensure_future(batcher.submit("k", [[1.0]], 1, prepare, apply))
    await wait_until(lambda: batcher.calls == 1, 10, "the blocker to take the only slot")
    good = asyncio.ensure_future(batcher.submit("k", [[2.0]], 1, prepare, apply))
    bad = asyncio.ensure_future(batcher.submit("k", [[-1.0]], 1, prepare, apply))
    await wait_until(lambda: batcher.requests == 3, 10, "both requests to queue")
    gate.set()
    assert await blocker == [1.0]
    assert await good == [2.0]
    with pytest.raises(ValueError, match="negative"):
        await bad
    pool.shutdown()


async def test_threads_are_shared_by_all_lanes_and_a_caller_who_gives_up_leaves_nothing() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher = Batcher(pool, concurrency=1, max_rows=100, max_wait=0)
    recorder = Recorder()
    held = asyncio.ensure_future(batcher.submit("a", [[1.0]], 1, prepare, recorder.apply))
    await wait_until(lambda: batcher.busy == 1, 10, "the first call to take the only thread")
    with pytest.raises(TimeoutError):  # another model's request waits for the thread
        await asyncio.wait_for(batcher.submit("b", [[2.0]], 1, prepare, recorder.apply), 0.05)
    assert batcher.calls == 1 and batcher.waiting == 0  # it left no trace behind
    held.cancel()  # the first caller gives up too; its thread goes on
    assert batcher.busy == 1
    later = asyncio.ensure_future(batcher.submit("b", [[3.0]], 1, prepare, recorder.apply))
    await wait_until(lambda: batcher.waiting == 1, 10, "the next request to wait")
    recorder.gate.set()
    assert await later == [6.0]
    assert batcher.calls == 2 and batcher.busy == 0 and recorder.sizes == [1, 1]
    pool.shutdown()
