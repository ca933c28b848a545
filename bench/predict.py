"""Issue 7: online prediction throughput and latency against the floors measured in the same run.

Trains two reference models through the API (iris LogisticRegression; diabetes
RandomForestRegressor, 100 trees), then, interleaving the scenarios round by round, measures
single-row predictions at concurrency 1 and 64, 1 000-row requests at concurrency 4, the
service's `/livez`, a bare Starlette app on one Hypercorn process (the framework floor), and the
in-process `json → predict → json` floor (the estimator loaded from the service's own artifact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from bench import api, data
from bench.common import Config, Section, med, spread
from bench.floor import InProcessFloor, load_estimator
from bench.harness import hello_server, running_service
from bench.load import LoadResult, describe_tool, load

BATCH_ROWS = 1000
MODELS: dict[str, tuple[str, dict[str, Any], Any]] = {
    "iris": ("sklearn.linear_model.LogisticRegression", {"max_iter": 1000}, data.iris),
    "diabetes": (
        "sklearn.ensemble.RandomForestRegressor",
        {"n_estimators": 100, "random_state": 0},
        data.diabetes,
    ),
}


@dataclass(frozen=True)
class Scenario:
    label: str
    url: str
    connections: int
    body: bytes | None = None
    rows: int = 0  # rows per request, for rows/s


def _bodies(features: list[str], records: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    one = msgspec.json.encode({"data": data.rows_of(records, features, 1)})
    many = msgspec.json.encode({"data": data.rows_of(records, features, BATCH_ROWS)})
    return one, many


async def _train_models(client: Any) -> dict[str, tuple[list[str], bytes, bytes]]:
    prepared = {}
    for name, (model_type, settings, dataset) in MODELS.items():
        features, target, records = dataset()
        await api.create_model(client, name, model_type, target=target, settings=settings)
        await api.train(client, name, records)
        one, many = _bodies(features, records)
        for body in (one, many):  # a sanity check, and the model's first load
            response = await client.post(
                f"/models/{name}/predict",
                content=body,
                headers={"content-type": "application/json"},
            )
            if response.status_code != 200:
                raise RuntimeError(f"predict {name}: {response.status_code} {response.text}")
        prepared[name] = (features, one, many)
    return prepared


def _scenarios(
    url: str, hello: str, prepared: dict[str, tuple[list[str], bytes, bytes]]
) -> list[Scenario]:
    out = []
    for name, (_, one, _) in prepared.items():
        for c in (1, 64):
            out.append(Scenario(f"{name} 1 row c{c}", f"{url}/models/{name}/predict", c, one, 1))
    for name, (_, _, many) in prepared.items():
        out.append(
            Scenario(f"{name} {BATCH_ROWS} rows c4", f"{url}/models/{name}/predict", 4, many, 1000)
        )
    hello_body = prepared["iris"][1]
    for c in (1, 64):
        out.append(Scenario(f"/livez c{c}", f"{url}/livez", c))
        out.append(Scenario(f"hello c{c}", f"{hello}/", c, hello_body))
    return out


async def _measure(scenarios: list[Scenario], config: Config) -> dict[str, list[LoadResult]]:
    for s in scenarios:  # warm-up: connections, caches, the JIT-less interpreter's dicts
        await load(s.url, connections=s.connections, seconds=config.warmup, body=s.body)
    results: dict[str, list[LoadResult]] = {s.label: [] for s in scenarios}
    for rep in range(config.reps):  # round by round, so drift hits every scenario alike
        for s in scenarios:
            r = await load(s.url, connections=s.connections, seconds=config.seconds, body=s.body)
            results[s.label].append(r)
            print(
                f"  round {rep + 1}: {s.label:24} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  errors {r.errors}",
                flush=True,
            )
    return results


async def run(config: Config) -> Section:
    section = Section("Online predictions (issue 7)")
    section.line(
        f"Load tool: {describe_tool()}. Each scenario {config.reps} × {config.seconds:g} s"
    )
    section.line("after a warm-up, interleaved round by round; median (min–max) over the rounds.")
    section.line()
    async with running_service() as svc, svc.client() as client:
        prepared = await _train_models(client)
        floors = {}
        for name, (features, one, many) in prepared.items():
            estimator = await load_estimator(svc, name)
            floors[name] = InProcessFloor(name, estimator, features, one, many).measure(config)
        with hello_server() as hello:
            scenarios = _scenarios(svc.url, hello, prepared)
            results = await _measure(scenarios, config)
    _report(section, scenarios, results, floors)
    return section


def _report(
    section: Section,
    scenarios: list[Scenario],
    results: dict[str, list[LoadResult]],
    floors: dict[str, Any],
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
    section.line("In-process floor (msgspec decode → estimator → msgspec encode, same bodies):")
    section.line()
    section.table(
        ["model", "1 row, µs/call", f"{BATCH_ROWS} rows, rows/s"],
        [[n, spread(f.one_us), spread(f.rows_per_s, ".0f")] for n, f in floors.items()],
    )
    _ratios(section, results, floors)


def _ratios(section: Section, results: dict[str, list[LoadResult]], floors: dict[str, Any]) -> None:
    def rps(label: str) -> float:
        return med([r.rps for r in results[label]])

    def p50(label: str) -> float:
        return med([r.p50_ms for r in results[label]])

    rows = []
    for c in (1, 64):
        hello = rps(f"hello c{c}")
        rows.append([f"/livez c{c} req/s ÷ hello c{c}", f"{rps(f'/livez c{c}') / hello:.3f}"])
        for name in MODELS:
            ratio = rps(f"{name} 1 row c{c}") / hello
            rows.append([f"{name} 1 row c{c} req/s ÷ hello c{c}", f"{ratio:.3f}"])
    for name, floor in floors.items():
        service = rps(f"{name} {BATCH_ROWS} rows c4") * BATCH_ROWS
        rows.append(
            [
                f"{name} {BATCH_ROWS}-row rows/s ÷ in-process",
                f"{service / med(floor.rows_per_s):.3f}",
            ]
        )
    for name, floor in floors.items():
        gap = p50(f"{name} 1 row c1") - med(floor.one_us) / 1e3
        rows.append([f"{name} c1 p50 − in-process 1-row time", f"{gap:.2f} ms"])
    for name in MODELS:
        gap = p50(f"{name} 1 row c1") - p50("hello c1")
        rows.append([f"{name} c1 p50 − hello c1 p50", f"{gap:.2f} ms"])
    section.line("Ratios (medians of this run):")
    section.line()
    section.table(["ratio", "value"], rows)
