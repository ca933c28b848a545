"""Issue 7, memory: does the api's RSS stay near `models.cache_bytes` when many models are used?

Trains many different small models (random forests on the diabetes data, each with its own
seed and tree count), then predicts with each in turn, twice round, sampling the api's RSS
(/proc/PID/status VmRSS) after every request, with `models.cache_bytes` set to 20 MB.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx2
import msgspec

from bench import api, data
from bench.common import Config, Section, med, pct
from bench.harness import rss_bytes, running_service

CACHE_BYTES = 20 * 1024 * 1024
MB = 1024 * 1024
PASSES = 2


async def _train_all(client: httpx2.AsyncClient, count: int) -> None:
    features, target, records = data.diabetes()
    body = msgspec.json.encode({"data": records})
    jobs = []
    for i in range(count):
        settings = {"n_estimators": 10 + i % 20, "random_state": i, "max_depth": 12}
        name = f"m{i:03d}"
        await api.create_model(
            client,
            name,
            "sklearn.ensemble.RandomForestRegressor",
            target=target,
            settings=settings,
        )
        jobs.append((await api.submit(client, name, body))["id"])
    for job in jobs:
        await api.wait_job(client, job, poll=0.05, within=1800)


async def _artifact_bytes(database_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT sum(artifact_bytes), max(artifact_bytes) FROM model_versions"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1])


async def _predict(client: httpx2.AsyncClient, name: str, body: bytes) -> float:
    sent = time.perf_counter()
    response = await client.post(
        f"/models/{name}/predict", content=body, headers={"content-type": "application/json"}
    )
    if response.status_code != 200:
        raise RuntimeError(f"predict {name}: {response.status_code} {response.text}")
    return time.perf_counter() - sent


async def run(config: Config) -> Section:
    count = 60 if config.quick else 200
    section = Section("Memory: many models, bounded cache (issue 7)")
    # Every model's training is submitted at once: the tenant's active-jobs quota must fit.
    async with (
        running_service(
            models__cache_bytes=CACHE_BYTES, limits__active_jobs_per_tenant=count
        ) as svc,
        svc.client() as client,
    ):
        started = time.perf_counter()
        await _train_all(client, count)
        trained_in = time.perf_counter() - started
        total, largest = await _artifact_bytes(svc.database_url)
        features, _, records = data.diabetes()
        body = msgspec.json.encode({"data": data.rows_of(records, features, 1)})
        await asyncio.sleep(0.5)
        cold = rss_bytes(svc.api.pid)
        await _predict(client, "m000", body)  # imports the tree code, starts the threads
        baseline = rss_bytes(svc.api.pid)
        samples, latencies = [], []
        for _ in range(PASSES):
            for i in range(count):
                latencies.append(await _predict(client, f"m{i:03d}", body))
                samples.append(rss_bytes(svc.api.pid))
        after_pass = [samples[(p + 1) * count - 1] for p in range(PASSES)]
    peak = max(samples)
    growth = peak - baseline
    section.line(
        f"{count} models trained in {trained_in:.1f} s; artifacts {total / MB:.1f} MB in all "
        f"(largest {largest / MB:.2f} MB), i.e. {total / CACHE_BYTES:.1f} × cache_bytes "
        f"({CACHE_BYTES / MB:.0f} MB). {PASSES} passes of one predict per model."
    )
    section.line()
    section.table(
        ["api RSS", "MB"],
        [
            ["before the first prediction", f"{cold / MB:.1f}"],
            ["after one prediction with one model (the baseline)", f"{baseline / MB:.1f}"],
            *[[f"after pass {p + 1}", f"{v / MB:.1f}"] for p, v in enumerate(after_pass)],
            ["peak", f"{peak / MB:.1f}"],
            ["growth (peak − baseline)", f"{growth / MB:.1f}"],
        ],
    )
    section.line(f"RSS growth ÷ cache_bytes: **{growth / CACHE_BYTES:.2f}**")
    section.line(f"RSS growth ÷ all artifact bytes: {growth / total:.2f}")
    section.line(
        f"Predict latency with a cache miss on nearly every request: p50 "
        f"{med(latencies) * 1e3:.1f} ms, p95 {pct(latencies, 0.95) * 1e3:.1f} ms"
    )
    return section
