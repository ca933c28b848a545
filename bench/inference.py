"""Issue [6/7]: the predict path in every input form, against floors measured in the same run.

One api process serves an iris LogisticRegression and a diabetes RandomForestRegressor (100
trees). Interleaved round by round: 1 000-row iris requests at concurrency 4 as records,
`columns` + `rows`, V2 JSON and V2 binary tensors; 1-row iris requests on the JSON route and
over V2 at concurrency 1 and 64; 1-row RandomForest over V2 at 1 and 64 (micro-batching); a
bare Starlette app on one Hypercorn process (hello). The in-process floors: `json → predict →
json` with the estimator the service stored, on the records body (as issue 7 measured it) and on
the columnar body.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from bench import api, data
from bench.common import Config, Section, med, spread
from bench.floor import InProcessFloor, load_estimator
from bench.harness import hello_server, running_service
from bench.load import LoadResult, describe_tool, load

BATCH_ROWS = 1000
BINARY = {"Content-Type": "application/octet-stream"}


@dataclass(frozen=True)
class Scenario:
    label: str
    path: str  # "" for hello
    connections: int
    body: bytes
    rows: int = 1
    headers: dict[str, str] = field(default_factory=dict)


def _bodies(features: list[str], records: list[dict[str, Any]], n: int) -> dict[str, Any]:
    picked = data.rows_of(records, features, n)
    matrix = [[r[f] for f in features] for r in picked]
    flat = [v for row in matrix for v in row]
    tensor = {"name": "x", "shape": [n, len(features)], "datatype": "FP64"}
    raw = np.array(matrix, dtype="<f8").tobytes()
    header = msgspec.json.encode(
        {"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}
    )
    return {
        "records": msgspec.json.encode({"data": picked}),
        "columns": msgspec.json.encode({"columns": features, "rows": matrix}),
        "v2": msgspec.json.encode({"inputs": [{**tensor, "data": flat}]}),
        "v2-binary": (
            header + raw,
            {**BINARY, "Inference-Header-Content-Length": str(len(header))},
        ),
    }


def _scenarios(
    iris: dict[int, dict[str, Any]], forest: dict[int, dict[str, Any]]
) -> list[Scenario]:
    predict, infer = "/models/{}/predict", "/v2/models/{}/infer"
    out = []
    for form in ("records", "columns", "v2", "v2-binary"):
        body, headers = iris[BATCH_ROWS][form], {}
        if isinstance(body, tuple):
            body, headers = body
        path = (infer if form.startswith("v2") else predict).format("iris")
        out.append(Scenario(f"iris 1000 rows {form} c4", path, 4, body, BATCH_ROWS, headers))
    for c in (1, 64):
        out.append(Scenario(f"iris 1 row c{c}", predict.format("iris"), c, iris[1]["records"]))
        out.append(Scenario(f"iris 1 row v2 c{c}", infer.format("iris"), c, iris[1]["v2"]))
        out.append(Scenario(f"forest 1 row v2 c{c}", infer.format("forest"), c, forest[1]["v2"]))
        out.append(Scenario(f"hello c{c}", "", c, iris[1]["records"]))
    return out


@dataclass
class ColumnarFloor:
    """`json → predict → json` on the columnar body: msgspec decode, one float64 array."""

    pipeline: Any
    body: bytes
    rows_per_s: list[float] = field(default_factory=list)

    def call(self) -> bytes:
        rows = msgspec.json.decode(self.body)["rows"]
        X = np.array(rows, dtype=np.float64)
        for _, step in self.pipeline.steps[:-1]:
            X = step.transform(X)
        values = self.pipeline.steps[-1][1].predict(X)
        return msgspec.json.encode({"model": "iris", "version": 1, "predictions": values.tolist()})

    def measure(self, config: Config) -> ColumnarFloor:
        for _ in range(config.reps):
            times: list[float] = []
            deadline = time.perf_counter() + config.seconds
            while len(times) < 3 or time.perf_counter() < deadline:
                start = time.perf_counter()
                self.call()
                times.append(time.perf_counter() - start)
            self.rows_per_s.append(BATCH_ROWS / statistics.median(times))
        return self


async def _prepare(client: Any) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    prepared = []
    for name, model_type, settings, dataset in (
        ("iris", "sklearn.linear_model.LogisticRegression", {"max_iter": 1000}, data.iris),
        (
            "forest",
            "sklearn.ensemble.RandomForestRegressor",
            {"n_estimators": 100, "random_state": 0},
            data.diabetes,
        ),
    ):
        features, target, records = dataset()
        await api.create_model(client, name, model_type, target=target, settings=settings)
        await api.train(client, name, records)
        prepared.append({n: _bodies(features, records, n) for n in (1, BATCH_ROWS)})
    return prepared[0], prepared[1]


async def _check(client: Any, scenarios: list[Scenario]) -> None:
    for s in scenarios:
        if s.path:
            headers = {"Content-Type": "application/json", **s.headers}
            response = await client.post(s.path, content=s.body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{s.label}: {response.status_code} {response.text[:300]}")


async def _measure(
    url: str, hello: str, scenarios: list[Scenario], config: Config
) -> dict[str, list[LoadResult]]:
    def target(s: Scenario) -> str:
        return f"{hello}/" if not s.path else url + s.path

    for s in scenarios:
        await load(
            target(s),
            connections=s.connections,
            seconds=config.warmup,
            body=s.body,
            headers=s.headers,
        )
    results: dict[str, list[LoadResult]] = {s.label: [] for s in scenarios}
    for rep in range(config.reps):
        order = scenarios if rep % 2 == 0 else list(reversed(scenarios))
        for s in order:
            r = await load(
                target(s),
                connections=s.connections,
                seconds=config.seconds,
                body=s.body,
                headers=s.headers,
            )
            results[s.label].append(r)
            print(
                f"  round {rep + 1}: {s.label:30} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  errors {r.errors}",
                flush=True,
            )
    return results


async def run(config: Config) -> Section:
    section = Section("Predict path and the Open Inference Protocol (issue [6/7])")
    section.line(
        f"Load tool: {describe_tool()}. Each scenario {config.reps} × {config.seconds:g} s"
    )
    section.line("after a warm-up, interleaved round by round (the order reversed every other")
    section.line("round); median (min–max) over the rounds.")
    section.line()
    async with running_service() as svc, svc.client() as client:
        iris, forest = await _prepare(client)
        features = data.iris()[0]
        estimator = await load_estimator(svc, "iris")
        floor = InProcessFloor(
            "iris", estimator, features, iris[1]["records"], iris[BATCH_ROWS]["records"]
        ).measure(config)
        columnar = ColumnarFloor(estimator, iris[BATCH_ROWS]["columns"]).measure(config)
        with hello_server() as hello:
            scenarios = _scenarios(iris, forest)
            await _check(client, scenarios)
            results = await _measure(svc.url, hello, scenarios, config)
    _report(section, scenarios, results, floor, columnar)
    return section


def _report(
    section: Section,
    scenarios: list[Scenario],
    results: dict[str, list[LoadResult]],
    floor: InProcessFloor,
    columnar: ColumnarFloor,
) -> None:
    rows = []
    for s in scenarios:
        rs = results[s.label]
        rps = [r.rps for r in rs]
        rows.append(
            [
                s.label,
                spread(rps),
                spread([x * s.rows for x in rps], ".0f") if s.rows > 1 else "",
                spread([r.p50_ms for r in rs], ".2f"),
                spread([r.p99_ms for r in rs], ".2f"),
                str(sum(r.errors for r in rs)),
            ]
        )
    section.table(["scenario", "req/s", "rows/s", "p50 ms", "p99 ms", "errors"], rows)
    section.line("In-process floors (same bodies; msgspec decode → estimator → msgspec encode):")
    section.line()
    section.table(
        ["floor", "1 row, µs/call", f"{BATCH_ROWS} rows, rows/s"],
        [
            ["records", spread(floor.one_us), spread(floor.rows_per_s, ".0f")],
            ["columns", "", spread(columnar.rows_per_s, ".0f")],
        ],
    )
    _targets(section, results, floor, columnar)


def _targets(
    section: Section,
    results: dict[str, list[LoadResult]],
    floor: InProcessFloor,
    columnar: ColumnarFloor,
) -> None:
    def value(label: str, attr: str) -> float:
        return med([getattr(r, attr) for r in results[label]])

    in_process = med(floor.rows_per_s)
    rows: list[list[str]] = []

    def target(name: str, got: float, goal: float, higher: bool, unit: str = "") -> None:
        met = got >= goal if higher else got <= goal
        sign = "≥" if higher else "≤"
        rows.append(
            [name, f"{got:.3f}{unit}", f"{sign} {goal:g}{unit}", "met" if met else "**missed**"]
        )

    for form, goal in (("v2", 0.8), ("v2-binary", 0.8), ("columns", 0.8), ("records", 0.6)):
        got = value(f"iris 1000 rows {form} c4", "rps") * BATCH_ROWS / in_process
        target(f"iris 1000-row {form} rows/s ÷ in-process (records floor)", got, goal, True)
    for form in ("v2", "columns"):
        got = value(f"iris 1000 rows {form} c4", "rps") * BATCH_ROWS / med(columnar.rows_per_s)
        rows.append(
            [f"iris 1000-row {form} rows/s ÷ columnar in-process floor", f"{got:.3f}", "", ""]
        )
    one = med(floor.one_us) / 1e3
    for route in ("iris 1 row", "iris 1 row v2"):
        target(
            f"{route} c1 p50 − in-process", value(f"{route} c1", "p50_ms") - one, 0.6, False, " ms"
        )
        target(
            f"{route} c64 req/s ÷ hello c64",
            value(f"{route} c64", "rps") / value("hello c64", "rps"),
            0.6,
            True,
        )
        target(
            f"{route} c64 p99 ÷ hello c64 p99",
            value(f"{route} c64", "p99_ms") / value("hello c64", "p99_ms"),
            2.0,
            False,
        )
    forest = value("forest 1 row v2 c64", "rps") / value("forest 1 row v2 c1", "rps")
    target("forest 1 row v2 c64 ÷ c1 req/s", forest, 4.0, True)
    section.line("Targets (medians of this run):")
    section.line()
    section.table(["figure", "value", "target", ""], rows)
