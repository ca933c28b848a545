"""Issue 5: what a training job costs beyond the fit itself.

1. Overhead: a tiny model (LinearRegression on 10 rows) trained N times in a row; the wall time
   from POST /models/{name}/train to observing `succeeded` (GET /jobs/{id} every 5 ms), against
   the in-process `fit` of the same model. Target: p50 under 100 ms.
2. Scale: 100 000 rows × 10 numeric features, evaluation off, submit → succeeded (upload shown
   separately) over the in-process `fit` on the same arrays, for LinearRegression and a
   mid-cost RandomForestRegressor (20 trees, depth 8). Target: ≤ 1.3.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import msgspec
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

from bench import api, data
from bench.common import Config, Section, med, pct, spread

POLL = 0.005
BIG_MODELS: dict[str, tuple[str, dict[str, Any], Callable[[], Any]]] = {
    "LinearRegression": ("sklearn.linear_model.LinearRegression", {}, LinearRegression),
    "RandomForestRegressor(20 trees, depth 8)": (
        "sklearn.ensemble.RandomForestRegressor",
        {"n_estimators": 20, "max_depth": 8, "random_state": 0},
        lambda: RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0),
    ),
}


@dataclass
class Timed:
    """One job: client-side times, and the phases from the job's own timestamps."""

    upload: float  # POST → 202
    total: float  # POST → succeeded observed
    queued: float  # created_at → started_at
    running: float  # started_at → finished_at
    observed: float  # finished_at → seen by the client


def _ts(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def timed_job(client: httpx2.AsyncClient, name: str, body: bytes) -> Timed:
    start = time.perf_counter()
    job = await api.submit(client, name, body)
    upload = time.perf_counter() - start
    done = await api.wait_job(client, job["id"], poll=POLL)
    total = time.perf_counter() - start
    seen = time.time()
    created, started, finished = (_ts(done[k]) for k in ("created_at", "started_at", "finished_at"))
    return Timed(upload, total, started - created, finished - started, seen - finished)


def fit_seconds(make: Callable[[], Any], X: np.ndarray, y: np.ndarray, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        estimator = make()
        start = time.perf_counter()
        estimator.fit(X, y)
        times.append(time.perf_counter() - start)
    return times


def _ms(values: list[float]) -> str:
    return spread([v * 1e3 for v in values], ".1f")


async def tiny(section: Section, client: httpx2.AsyncClient, n: int) -> None:
    X = np.arange(10, dtype=np.float64).reshape(-1, 1)
    y = 2 * X[:, 0] + 1
    await api.create_model(client, "tiny", "sklearn.linear_model.LinearRegression", target="y")
    body = msgspec.json.encode(
        {"data": [{"x": float(a), "y": float(b)} for a, b in zip(X[:, 0], y, strict=True)]}
    )
    await timed_job(client, "tiny", body)  # warm-up: the worker's first fit starts its forkserver
    runs = [await timed_job(client, "tiny", body) for _ in range(n)]
    fit = med(fit_seconds(LinearRegression, X, y, 200))
    totals = [r.total for r in runs]
    p50, p95 = med(totals), pct(totals, 0.95)
    section.line(f"### Job overhead: LinearRegression on 10 rows, {n} jobs in a row")
    section.line()
    section.table(
        ["measure", "ms"],
        [
            ["submit → succeeded, p50", f"{p50 * 1e3:.1f}"],
            ["submit → succeeded, p95", f"{p95 * 1e3:.1f}"],
            ["in-process fit (median of 200)", f"{fit * 1e3:.3f}"],
            ["overhead p50 (p50 − fit)", f"{(p50 - fit) * 1e3:.1f}"],
        ],
    )
    verdict = "met" if p50 < 0.1 else "MISSED"
    section.line(f"p50 ÷ in-process fit: **{p50 / fit:.0f}×**; target p50 < 100 ms: **{verdict}**")
    section.line()
    section.line("Where the time goes (job timestamps; median (min–max) ms):")
    section.line()
    section.table(
        ["phase", "ms"],
        [
            ["POST → 202 (validate, store rows, enqueue)", _ms([r.upload for r in runs])],
            ["queued: created → started (Redis, worker pick-up)", _ms([r.queued for r in runs])],
            ["running: started → finished (child, fit, artifact)", _ms([r.running for r in runs])],
            ["finished → observed by the 5 ms poll", _ms([r.observed for r in runs])],
        ],
    )


async def scale(section: Section, client: httpx2.AsyncClient, rows: int, reps: int) -> None:
    X, y = data.synthetic(rows, 10)
    body = msgspec.json.encode({"data": data.records_of(X, y)})
    section.line(
        f"### Service wall time ÷ in-process fit: {rows:,} rows × 10 features, evaluation off"
    )
    section.line()
    section.line(f"Request body {len(body) / 1e6:.1f} MB; {reps} job(s) per model; seconds.")
    section.line()
    table = []
    for i, (label, (model_type, settings, make)) in enumerate(BIG_MODELS.items()):
        name = f"big{i}"
        await api.create_model(client, name, model_type, target="y", settings=settings)
        runs = [await timed_job(client, name, body) for _ in range(reps)]
        fit = med(fit_seconds(make, X, y, reps))
        total = med([r.total for r in runs])
        upload = med([r.upload for r in runs])
        table.append(
            [
                label,
                spread([r.upload for r in runs], ".2f"),
                spread([r.total for r in runs], ".2f"),
                spread([r.running for r in runs], ".2f"),
                f"{fit:.2f}",
                f"**{total / fit:.2f}**",
                f"{(total - upload) / fit:.2f}",
            ]
        )
    section.table(
        [
            "model",
            "upload (POST → 202)",
            "submit → succeeded",
            "job running phase",
            "in-process fit",
            "total ÷ fit (target ≤ 1.3)",
            "(total − upload) ÷ fit",
        ],
        table,
    )


async def run(config: Config) -> Section:
    from bench.harness import running_service

    section = Section("Training jobs (issue 5)")
    # The scale case posts its rows as one JSON body (~25 MB at 100 000 rows), past the
    # default JSON limit: raise it to the body limit for this measurement.
    service = running_service(worker__eval_fraction=0, http__max_json_bytes=32 * 1024 * 1024)
    async with service as svc, svc.client(600) as client:
        await tiny(section, client, 10 if config.quick else 30)
        await scale(section, client, 20_000 if config.quick else 100_000, 1 if config.quick else 3)
    return section
