"""A training job's `progress` follows its phases: loading, evaluating, fitting, storing."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.estimators.phases import PROGRESS, Phase
from service.settings import Settings
from service.worker.app import build_worker
from tests.factories import AppClient, ClientFactory, json_of, make_model, submit
from tests.worker import plugin_gated

pytestmark = pytest.mark.anyio

DEADLINE_SECONDS = 60.0


def with_gated_plugin(settings: Settings) -> Settings:
    models = msgspec.structs.replace(settings.models, plugins=[plugin_gated.__name__])
    return msgspec.structs.replace(settings, models=models)


async def run_worker(settings: Settings) -> None:
    worker = build_worker(
        settings, burst=True, handle_signals=False, serve_metrics=False, poll_delay=0.01
    )
    try:
        await worker.main()
    finally:
        await worker.close()


class JobWatch:
    """Polls a job (with a deadline) and keeps every distinct `progress` it saw, in order."""

    def __init__(self, client: AppClient, job_id: str) -> None:
        self.client, self.job_id = client, job_id
        self.seen: list[float] = []

    async def until(self, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            job: dict[str, Any] = json_of(await self.client.get(f"/jobs/{self.job_id}"))
            progress = job["progress"]
            if progress is not None and (not self.seen or self.seen[-1] != progress):
                self.seen.append(progress)
            if done(job):
                return job
            assert time.monotonic() < deadline, f"gave up waiting; last seen {job}"
            await asyncio.sleep(0.01)


def at(phase: Phase) -> Callable[[dict[str, Any]], bool]:
    # `progress` is a PostgreSQL `real`: compare at its precision.
    return lambda job: (
        job["progress"] is not None and math.isclose(job["progress"], PROGRESS[phase], rel_tol=1e-6)
    )


async def test_progress_rises_through_the_phases_to_one(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    gated = with_gated_plugin(settings)
    client = await client_factory(gated)
    gate = tmp_path / "gate"
    await make_model(client, "gated", plugin_gated.NAME, target="y", settings={"gate": str(gate)})
    rows = [{"x": float(i), "y": 2.0 * i} for i in range(40)]  # enough to hold some out
    job = await submit(client, "gated", "train", {"data": rows})
    watch = JobWatch(client, job["id"])
    worker = asyncio.create_task(run_worker(gated))
    try:
        await watch.until(at(Phase.EVALUATING))  # the held-out fit waits at its gate
        gate.touch()
        await watch.until(at(Phase.FITTING))  # the final fit waits at its gate
        gate.touch()
        done = await watch.until(lambda j: j["status"] not in ("queued", "running"))
        await worker
    finally:
        if not worker.done():
            worker.cancel()
            with contextlib.suppress(BaseException):
                await worker
    assert done["status"] == "succeeded", done
    assert watch.seen == sorted(watch.seen) and watch.seen[-1] == 1
    assert any(math.isclose(p, PROGRESS[Phase.EVALUATING], rel_tol=1e-6) for p in watch.seen)
    assert any(math.isclose(p, PROGRESS[Phase.FITTING], rel_tol=1e-6) for p in watch.seen)
