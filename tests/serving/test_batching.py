"""The batcher on its own: lone requests run at once, queued ones share calls within limits, and
small requests to lanes known to be fast run on the event loop while nothing else is served.

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

from service.serving.batching import INLINE_MAX_ROWS, Batcher, InFlight, in_flight
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


class ThreadRecorder:
    """An `apply` that remembers which thread ran each call."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def apply(self, matrix: np.ndarray) -> Sequence[Any]:
        self.threads.append(threading.get_ident())
        return list(matrix[:, 0] * 2)


async def test_a_small_request_to_a_lane_known_to_be_fast_runs_on_the_event_loop() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    # Every call counts as fast, so the only question is whether the rules allow running it.
    batcher = Batcher(pool, concurrency=1, max_rows=100, max_wait=0, inline_below=3600.0)
    recorder = ThreadRecorder()
    loop_thread = threading.get_ident()
    assert await batcher.submit("k", [[1.0]], 1, prepare, recorder.apply) == [2.0]
    assert recorder.threads[-1] != loop_thread  # its first call is timed on a thread
    assert await batcher.submit("k", [[2.0]], 1, prepare, recorder.apply) == [4.0]
    assert recorder.threads[-1] == loop_thread and batcher.inline == 1
    big = [[float(i)] for i in range(INLINE_MAX_ROWS + 1)]
    assert await batcher.submit("k", big, len(big), prepare, recorder.apply) == [
        2.0 * i for i in range(INLINE_MAX_ROWS + 1)
    ]
    assert recorder.threads[-1] != loop_thread  # too many rows for the loop
    with pytest.raises(ValueError):  # a bad request fails alone, inline too
        await batcher.submit("k", [["x"]], 1, prepare, recorder.apply)
    assert batcher.inline == 2 and batcher.calls == 4 and batcher.requests == 4
    pool.shutdown()


async def test_nothing_runs_on_the_event_loop_while_a_thread_is_busy() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher = Batcher(pool, concurrency=1, max_rows=100, max_wait=0, inline_below=3600.0)
    fast = ThreadRecorder()
    await batcher.submit("fast", [[1.0]], 1, prepare, fast.apply)  # timed: now known fast
    slow = Recorder()
    held = asyncio.ensure_future(batcher.submit("slow", [[1.0]], 1, prepare, slow.apply))
    await wait_until(lambda: batcher.busy == 1, 10, "the slow call to take the only thread")
    waiting = asyncio.ensure_future(batcher.submit("fast", [[3.0]], 1, prepare, fast.apply))
    await wait_until(lambda: batcher.waiting == 1, 10, "the fast request to queue")
    assert batcher.inline == 0  # it waits for the thread with the others, to be batched
    slow.gate.set()
    assert await held == [2.0] and await waiting == [6.0]
    assert batcher.inline == 0 and len(fast.threads) == 2
    assert threading.get_ident() not in fast.threads
    pool.shutdown()


@pytest.mark.parametrize(("inline_below", "max_wait"), [(0.0, 0.0), (3600.0, 0.001)])
async def test_running_on_the_event_loop_can_be_off(inline_below: float, max_wait: float) -> None:
    """`inline_below` 0 turns it off, and so does `max_wait`, which asks lone calls to wait."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher = Batcher(
        pool, concurrency=1, max_rows=100, max_wait=max_wait, inline_below=inline_below
    )
    recorder = ThreadRecorder()
    for i in range(3):
        assert await batcher.submit("k", [[float(i)]], 1, prepare, recorder.apply) == [2.0 * i]
    assert batcher.inline == 0 and threading.get_ident() not in recorder.threads
    pool.shutdown()


async def test_a_request_served_alongside_others_goes_to_a_thread_to_share_calls() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    batcher = Batcher(pool, concurrency=1, max_rows=100, max_wait=0, inline_below=3600.0)
    recorder = ThreadRecorder()
    served = InFlight()
    token = in_flight.set(served)
    try:
        served.count = 1  # this request alone
        await batcher.submit("k", [[1.0]], 1, prepare, recorder.apply)  # timed on a thread
        assert await batcher.submit("k", [[2.0]], 1, prepare, recorder.apply) == [4.0]
        assert batcher.inline == 1
        served.count = 2  # another request is being served too
        assert await batcher.submit("k", [[3.0]], 1, prepare, recorder.apply) == [6.0]
        assert batcher.inline == 1 and recorder.threads[-1] != threading.get_ident()
    finally:
        in_flight.reset(token)
    pool.shutdown()


def test_a_request_is_alone_only_while_one_connection_has_sent_requests_lately() -> None:
    served = InFlight(window=3600.0)
    served.arrived(("10.0.0.1", 5000))
    assert served.alone  # the first connection, one request
    served.arrived(("10.0.0.1", 5000))
    assert not served.alone  # two requests not yet answered
    served.count = 0
    served.arrived(("10.0.0.1", 5000))
    assert served.alone  # the same connection again
    served.count = 0
    served.arrived(("10.0.0.2", 6000))
    assert not served.alone  # another connection sent a request lately
