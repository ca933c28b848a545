"""Aliases and traffic on the predict path: routing across api processes, the weighted split,
shadow versions that never touch the answer, and figures summed over replicas."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import (
    AppClient,
    ClientFactory,
    Worker,
    burst_worker,
    json_of,
    make_model,
    run_job,
    wait_until,
)
from tests.serving import plugin_faulty

pytestmark = pytest.mark.anyio


async def train_line(
    client: httpx2.AsyncClient, run_worker: Worker, name: str, slope: float
) -> None:
    if (await client.get(f"/models/{name}")).status_code == 404:
        await make_model(client, name, "sklearn.linear_model.LinearRegression", target="y")
    data = [{"x": float(x), "y": slope * x} for x in range(10)]
    await run_job(client, run_worker, name, "train", {"data": data})


async def predict(client: httpx2.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    headers = extra.pop("headers", {})
    body = {"data": [{"x": 10.0}], **extra}
    response = await client.post(f"/models/{name}/predict", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = json_of(response)
    return answer


async def put_traffic(client: httpx2.AsyncClient, name: str, body: dict[str, Any]) -> None:
    response = await client.put(f"/models/{name}/traffic", json=body)
    assert response.status_code == 200, response.text


async def figures(client: httpx2.AsyncClient, name: str) -> dict[int, dict[str, Any]]:
    response = await client.get(f"/models/{name}/traffic")
    assert response.status_code == 200, response.text
    return {f["version"]: f for f in json_of(response)["figures"]}


async def test_an_alias_moved_in_one_api_answers_from_the_other_at_once(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    first = await client_factory(settings)
    second = await client_factory(settings)
    for slope in (1.0, 2.0, 3.0):
        await train_line(first, run_worker, "lin", slope)
    moved = await first.put("/models/lin/aliases/production", json={"version": 1})
    assert moved.status_code == 200, moved.text

    async def answers_with(version: int) -> bool:  # the notification travels through PostgreSQL
        return bool((await predict(second, "lin", alias="production"))["version"] == version)

    await wait_until(lambda: answers_with(1), 10, "the alias to reach the second api")
    answer = await predict(second, "lin", alias="production")
    assert answer["predictions"] == [pytest.approx(10.0)]
    assert (await predict(second, "lin"))["version"] == 3  # no alias: the current version
    await first.put("/models/lin/aliases/production", json={"version": 2})
    await wait_until(lambda: answers_with(2), 10, "the move to reach the second api")
    assert (await first.delete("/models/lin/aliases/production")).status_code == 204

    async def alias_gone() -> bool:
        body = {"data": [{"x": 1.0}], "alias": "production"}
        return (await second.post("/models/lin/predict", json=body)).status_code == 404

    await wait_until(alias_gone, 10, "the delete to reach the second api")


async def test_a_90_10_split_over_2000_requests_lands_within_binomial_tolerance(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    client = await client_factory(settings)
    for slope in (1.0, 3.0):
        await train_line(client, run_worker, "lin", slope)
    split = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    await put_traffic(client, "lin", {"split": split})
    n, share = 2000, 0.10
    counts = {1: 0, 2: 0}
    for start in range(0, n, 100):
        answers = await asyncio.gather(*(predict(client, "lin") for _ in range(100)))
        for answer in answers:
            counts[answer["version"]] += 1
            expected = 10.0 if answer["version"] == 1 else 30.0
            assert answer["predictions"] == [pytest.approx(expected)], start
    # Binomial(2000, 0.1): mean 200, sd 13.4; 5 sd either side fails once in ~3.5 million runs.
    sd = math.sqrt(n * share * (1 - share))
    assert abs(counts[2] - n * share) < 5 * sd, counts
    # The same request id always lands on the same version.
    rid = {"X-Request-ID": str(uuid.uuid4())}
    chosen = {(await predict(client, "lin", headers=rid))["version"] for _ in range(20)}
    assert len(chosen) == 1
    # Pinned predictions ignore the split and are not counted in it.
    assert (await predict(client, "lin", version=2))["version"] == 2
    counted = await figures(client, "lin")
    assert counted[1]["requests"] + counted[2]["requests"] == n + 20
    assert counted[2]["requests"] == counts[2] + 20 * (chosen == {2})
    assert {f["role"] for f in counted.values()} == {"split"}


def faulty_settings(settings: Settings, **models: Any) -> Settings:
    return msgspec.structs.replace(
        settings,
        http=msgspec.structs.replace(settings.http, predict_timeout=2.0),
        models=msgspec.structs.replace(settings.models, plugins=[plugin_faulty.__name__], **models),
    )


async def train_constant(
    client: httpx2.AsyncClient, run_worker: Worker, name: str, value: float
) -> None:
    if (await client.get(f"/models/{name}")).status_code == 404:
        await make_model(client, name, plugin_faulty.NAME, target="y")
    data = [{"x": float(x), "y": value} for x in range(30)]
    await run_job(client, run_worker, name, "train", {"data": data})


async def test_a_shadow_that_raises_never_changes_the_answer_and_counts_its_errors(
    client_factory: ClientFactory, settings: Settings
) -> None:
    faulty = faulty_settings(settings)
    client = await client_factory(faulty)
    run_worker = burst_worker(faulty)
    await train_constant(client, run_worker, "f", 5.0)  # version 1 answers
    await train_constant(client, run_worker, "f", plugin_faulty.RAISES)  # version 2 raises
    await put_traffic(client, "f", {"split": [{"version": 1, "weight": 100}], "shadow": [2]})
    plugin_faulty.ARMED.set()
    try:
        for _ in range(20):
            answer = await predict(client, "f")
            assert (answer["version"], answer["predictions"]) == (1, [5.0])
        # The shadow really ran, and really failed: a pinned call to it fails the same way.
        pinned = await client.post("/models/f/predict", json={"data": [{"x": 1.0}], "version": 2})
        assert pinned.status_code != 200
        shadows = client.services.predictor.shadows  # queued shadows run while still armed
        await wait_until(lambda: shadows.pending == 0, 10, "the shadow calls to finish")
    finally:
        plugin_faulty.ARMED.clear()

    async def all_counted() -> bool:
        return (await figures(client, "f")).get(2, {}).get("requests") == 20

    await wait_until(all_counted, 10, "the shadow's 20 calls to be counted")
    counted = await figures(client, "f")
    assert counted[1] | {"p50_ms": None, "p99_ms": None} == {
        "version": 1, "role": "split", "requests": 20, "errors": 0, "rows": 20,
        "p50_ms": None, "p99_ms": None, "agreement": None, "dropped": 0,
    }  # fmt: skip
    assert counted[2]["role"] == "shadow" and counted[2]["errors"] == 20
    assert counted[2]["agreement"] is None  # nothing compared: every call failed


async def test_a_shadow_that_holds_its_thread_never_holds_an_answer(
    client_factory: ClientFactory, settings: Settings
) -> None:
    """One shadow thread, two unfinished shadow calls at most: while the shadow is held, every
    answer still comes back, the shadow calls beyond the queue are dropped and counted."""
    held = faulty_settings(settings, shadow_threads=1, shadow_queue=2)
    client = await client_factory(held)
    run_worker = burst_worker(held)
    await train_constant(client, run_worker, "f", 5.0)
    await train_constant(client, run_worker, "f", plugin_faulty.HOLDS)
    await put_traffic(client, "f", {"split": [{"version": 1, "weight": 100}], "shadow": [2]})
    shadows = client.services.predictor.shadows
    plugin_faulty.ARMED.set()
    try:
        answers = [await predict(client, "f") for _ in range(10)]
        assert {(a["version"], a["predictions"][0]) for a in answers} == {(1, 5.0)}
        await wait_until(lambda: plugin_faulty.held == 1, 10, "the shadow call to be held")
        assert shadows.pending == 2  # one held on the thread, one waiting for it
        plugin_faulty.RELEASE.set()
        await wait_until(lambda: shadows.pending == 0, 30, "the shadow calls to finish")
    finally:
        plugin_faulty.ARMED.clear()
        plugin_faulty.RELEASE.clear()
    counted = await figures(client, "f")
    assert counted[1]["requests"] == 10 and counted[1]["errors"] == 0
    assert counted[2]["dropped"] == 8
    assert counted[2]["requests"] + counted[2]["dropped"] == 10


async def test_agreement_is_one_for_identical_versions_and_zero_for_different_ones(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    client = await client_factory(settings)
    for slope in (2.0, 2.0, 5.0):  # versions 1 and 2 identical, 3 different
        await train_line(client, run_worker, "lin", slope)
    await put_traffic(client, "lin", {"split": [{"version": 1, "weight": 100}], "shadow": [2, 3]})
    rows = {"data": [{"x": float(x)} for x in range(1, 6)]}
    for _ in range(10):
        response = await client.post("/models/lin/predict", json=rows)
        assert response.status_code == 200 and json_of(response)["version"] == 1

    async def compared() -> bool:
        counted = await figures(client, "lin")
        return all(counted.get(v, {}).get("requests") == 10 for v in (2, 3))

    await wait_until(compared, 10, "both shadows' calls to be counted")
    counted = await figures(client, "lin")
    assert (counted[2]["agreement"], counted[2]["rows"], counted[2]["errors"]) == (1.0, 50, 0)
    assert (counted[3]["agreement"], counted[3]["rows"], counted[3]["errors"]) == (0.0, 50, 0)
    assert counted[1]["role"] == "split" and counted[1]["agreement"] is None


async def test_figures_are_summed_over_api_replicas_and_restart_with_a_new_split(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    first = await client_factory(settings)
    second = await client_factory(settings)
    for slope in (1.0, 3.0):
        await train_line(first, run_worker, "lin", slope)
    await put_traffic(first, "lin", {"split": [{"version": 2, "weight": 100}]})

    async def routed_by_split(client: httpx2.AsyncClient) -> bool:
        return bool((await predict(client, "lin"))["version"] == 2)

    await wait_until(lambda: routed_by_split(second), 10, "the split to reach the second api")
    await asyncio.gather(*(predict(first, "lin") for _ in range(7)))
    await asyncio.gather(*(predict(second, "lin") for _ in range(5)))

    async def summed() -> int:
        return int((await figures(first, "lin")).get(2, {}).get("requests", 0))

    # `second` flushes its counts within a second; `first` sends its own before it reads.
    await wait_until(lambda: _at_least(summed, 13), 10, "both replicas' counts")
    counted = (await figures(second, "lin"))[2]
    assert counted["requests"] >= 13 and counted["errors"] == 0
    assert counted["p50_ms"] is not None and counted["p99_ms"] >= counted["p50_ms"]
    await put_traffic(
        first, "lin", {"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}
    )
    assert await figures(first, "lin") == {}


async def _at_least(read: Any, n: int) -> bool:
    return bool(await read() >= n)


async def pooled_statements(raw: asyncpg.Connection) -> dict[int, Any]:
    """When each of the api's pooled connections last began a statement (the change listener,
    whose last statement is its LISTEN or keepalive, left out)."""
    rows = await raw.fetch(
        """
        SELECT pid, query_start FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type = 'client backend'
          AND query NOT LIKE 'LISTEN%' AND query <> 'SELECT 1'
        """
    )
    return {r["pid"]: r["query_start"] for r in rows}


async def test_predictions_by_alias_and_through_a_split_with_a_shadow_run_no_statement(
    client: AppClient, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    for slope in (1.0, 2.0, 3.0):
        await train_line(client, run_worker, "lin", slope)
    await client.put("/models/lin/aliases/production", json={"version": 2})
    await put_traffic(
        client,
        "lin",
        {"split": [{"version": 1, "weight": 90}, {"version": 3, "weight": 10}], "shadow": [2]},
    )
    shadows = client.services.predictor.shadows
    for version in (1, 2, 3):  # every version loaded once
        await predict(client, "lin", version=version)
    await predict(client, "lin")
    await wait_until(lambda: shadows.pending == 0, 10, "the warm-up's shadow call")
    before = await pooled_statements(raw)
    assert before, "the api's pool holds connections"
    answers = await asyncio.gather(
        *(predict(client, "lin", alias="production") for _ in range(20)),
        *(predict(client, "lin") for _ in range(40)),
    )
    assert {a["version"] for a in answers[:20]} == {2}
    assert {a["version"] for a in answers[20:]} <= {1, 3}
    await wait_until(lambda: shadows.pending == 0, 10, "the shadow calls")
    assert await pooled_statements(raw) == before
    # The positive control: a read of the model does run a statement on the pool.
    await client.get("/models/lin")
    assert await pooled_statements(raw) != before
