"""Each limit of a fit's child process, hit by a real fit: the job fails at once as
`resource_limit` naming the limit, is not retried, and the worker goes on to the next job."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from service.worker.app import build_worker
from tests.factories import (
    LOGREG,
    ClientFactory,
    burst_worker,
    job_of,
    json_of,
    make_dataset,
    make_model,
    run_job,
    submit,
    wait_until,
)
from tests.iris import iris_records

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]
FOREST = "sklearn.ensemble.RandomForestClassifier"
SPLINES = "sklearn.preprocessing.SplineTransformer"
# One spline column per knot and feature: 150 rows x 4 features x a million knots is 4.8 GB of
# float64, which no model limit prevents.
SPLINE_BOMB = {"n_knots": 1_000_000}


def with_worker(settings: Settings, **worker: Any) -> Settings:
    return msgspec.structs.replace(
        settings, worker=msgspec.structs.replace(settings.worker, **worker)
    )


async def attempts(database_url: str, job_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval("SELECT attempts FROM jobs WHERE id = $1::uuid", job_id)
        assert isinstance(count, int)
        return count
    finally:
        await conn.close()


async def fails_for_a_limit(
    client: httpx2.AsyncClient, run: Worker, database_url: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Runs the model's training job, which must fail once for a resource limit."""
    job = await submit(client, name, "train", body)
    await run()
    done = await job_of(client, job["id"])
    assert done["status"] == "failed", done
    assert done["error"]["type"] == "resource_limit", done["error"]
    assert await attempts(database_url, job["id"]) == 1  # never retried
    error: dict[str, Any] = done["error"]
    return error


async def test_a_fit_beyond_the_memory_limit_fails_and_the_next_job_succeeds(
    client: httpx2.AsyncClient, settings: Settings, database_url: str
) -> None:
    run = burst_worker(with_worker(settings, fit_memory_bytes=1024**3))
    await make_model(client, "bomb", SPLINES, settings=SPLINE_BOMB)
    error = await fails_for_a_limit(client, run, database_url, "bomb", {"data": iris_records()})
    assert error["message"] == "the fit exceeded worker.fit_memory_bytes (1 GiB)"

    await make_model(client, "fine", LOGREG, target="species", settings={"max_iter": 500})
    await run_job(client, run, "fine", "train", {"data": iris_records()})


async def test_a_fit_beyond_the_cpu_time_limit_is_stopped_and_the_next_job_succeeds(
    client: httpx2.AsyncClient, settings: Settings, database_url: str
) -> None:
    counted: list[float | None] = []

    async def run() -> None:
        worker = build_worker(
            with_worker(settings, fit_cpu_seconds=1),
            burst=True,
            handle_signals=False,
            serve_metrics=False,
            poll_delay=0.01,
        )
        try:
            await worker.main()
            registry = worker.ctx["app"].metrics.registry
            counted.append(registry.get_sample_value("worker_fit_limits_total", {"limit": "cpu"}))
        finally:
            await worker.close()

    slow = {"n_estimators": 2000, "max_depth": 12}
    await make_model(client, "slow", FOREST, target="species", settings=slow)
    error = await fails_for_a_limit(
        client, run, database_url, "slow", {"data": iris_records() * 100}
    )
    assert error["message"] == "the fit exceeded worker.fit_cpu_seconds (1 s of CPU time)"
    assert counted == [1.0]

    await make_model(client, "fine", LOGREG, target="species", settings={"max_iter": 500})
    await run_job(client, run, "fine", "train", {"data": iris_records()})


@pytest.mark.parametrize(("asked", "threads", "used"), [(-1, 1, 1), (8, 2, 2), (None, 2, None)])
async def test_n_jobs_is_clamped_to_the_fit_threads_and_recorded(
    client: httpx2.AsyncClient,
    settings: Settings,
    asked: int | None,
    threads: int,
    used: int | None,
) -> None:
    run = burst_worker(with_worker(settings, fit_threads=threads))
    forest = {"n_estimators": 10, "n_jobs": asked}
    await make_model(client, "forest", FOREST, target="species", settings=forest)
    done = await run_job(client, run, "forest", "train", {"data": iris_records()})
    version = json_of(await client.get(f"/models/forest/versions/{done['result']['version']}"))
    assert version["settings"]["n_jobs"] == used


async def test_a_model_beyond_the_model_limits_is_a_422_naming_the_setting(
    client: httpx2.AsyncClient,
) -> None:
    bombs = {
        FOREST: ({"n_estimators": 100_000_000}, "$.settings.n_estimators"),
        "sklearn.preprocessing.PolynomialFeatures": ({"degree": 60}, "$.settings.degree"),
        "sklearn.neural_network.MLPClassifier": (
            {"hidden_layer_sizes": [100_000, 100_000]},
            "$.settings.hidden_layer_sizes[0]",
        ),
    }
    for model_type, (bomb, field) in bombs.items():
        body = {"name": "bomb", "model_type": model_type, "settings": bomb}
        response = await client.post("/models", json=body)
        assert response.status_code == 422, response.text
        assert field in [error["loc"] for error in json_of(response)["errors"]]
    shown = json_of(await client.get(f"/model-types/{FOREST}"))
    assert shown["hyperparameters"]["properties"]["n_estimators"]["maximum"] == 2000


async def test_a_refit_beyond_the_row_limit_in_total_is_refused_naming_it(
    client_factory: ClientFactory, settings: Settings
) -> None:
    capped = with_worker(settings, max_train_rows=200)
    client = await client_factory(capped)
    run = burst_worker(capped)
    await make_model(client, "growing", LOGREG, target="species", settings={"max_iter": 500})
    await run_job(client, run, "growing", "train", {"data": iris_records()})
    # Inline rows are counted at submission...
    response = await client.post("/models/growing/update", json={"data": iris_records()[:100]})
    assert response.status_code == 422, response.text
    assert "250 rows, more than 200" in json_of(response)["detail"]
    # ... a dataset's by the worker, which reads them.
    await make_dataset(client, "more", iris_records()[:100])
    job = await submit(client, "growing", "update", {"dataset": {"name": "more"}})
    await run()
    done = await job_of(client, job["id"])
    assert done["status"] == "failed" and done["error"]["type"] == "TooManyRows", done
    assert "250 rows" in done["error"]["message"]
    assert "worker.max_train_rows (200)" in done["error"]["message"]


async def test_a_child_killed_like_the_out_of_memory_killer_does_fails_without_retry(
    client: httpx2.AsyncClient, database_url: str, run_worker: Worker
) -> None:
    slow = {"n_estimators": 2000, "max_depth": 12}
    await make_model(client, "slow", FOREST, target="species", settings=slow)
    job = await submit(client, "slow", "train", {"data": iris_records() * 100})
    worker = asyncio.ensure_future(run_worker())

    async def child_pid() -> int | None:
        return await pid_of_child(database_url, job["id"])

    async def started() -> bool:
        return await child_pid() is not None

    await wait_until(started, 60, "the fit to start")
    pid = await child_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await asyncio.wait_for(worker, 60)
    done = await job_of(client, job["id"])
    assert done["status"] == "failed" and done["error"]["type"] == "resource_limit", done
    assert "SIGKILL" in done["error"]["message"] and "memory" in done["error"]["message"]
    assert await attempts(database_url, job["id"]) == 1

    await make_model(client, "fine", LOGREG, target="species", settings={"max_iter": 500})
    await run_job(client, run_worker, "fine", "train", {"data": iris_records()})


async def pid_of_child(database_url: str, job_id: str) -> int | None:
    conn = await asyncpg.connect(database_url)
    try:
        pid = await conn.fetchval(
            "SELECT child_pid FROM jobs WHERE id = $1::uuid AND status = 'running'", job_id
        )
        return pid if isinstance(pid, int) else None
    finally:
        await conn.close()
