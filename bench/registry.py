"""Issue 13: what aliases, a traffic split and a shadow version cost a prediction.

One api process serves four models trained alike (iris LogisticRegression, three versions
each), so the scenarios differ only in how a prediction is routed: `cur` predicts the current
version (no alias, no split: the baseline), `ali` names the alias `production` (→ 3), `spl`
follows a 90/10 split over versions 1 and 2, and `sha` follows the same split with version 3 as
a shadow. Single-row requests at concurrency 1 and 64, every round running each scenario back to
back (the order reversed every other round), so drift hits all alike; a ratio is `cur` ÷
scenario within each round, then the median of those. Besides req/s and latency, each round
records the api process's CPU time per request: the cost itself, which the other processes on a
shared machine disturb far less than they do throughput and latency (a shadow's work, done after
the answer, counts there too).

After the run `GET /models/sha/traffic` shows whether the shadow really ran: its requests plus
the ones dropped (shadow queue full) should equal the requests the split answered, and its
agreement should be 1.0, the versions being fits of the same data.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx2
import msgspec

from bench import api, data
from bench.common import Config, Section, med, spread
from bench.harness import running_service
from bench.load import LoadResult, describe_tool, load
from bench.pg_probe import cpu_seconds

VERSIONS = 3
ALIAS = "production"
SPLIT = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
SHADOW = [3]
CONCURRENCY = (1, 64)
# Targets of the issue: `cur` req/s ÷ scenario req/s at c64, and c1 p50 scenario − `cur`.
RPS_LIMIT = {"ali": 1.05, "spl": 1.05, "sha": 1.15}
P50_LIMIT_MS = 0.1
WHAT = {
    "cur": "current version (no alias, no split)",
    "ali": f"alias `{ALIAS}` → {VERSIONS}",
    "spl": "split 90/10 over v1/v2",
    "sha": f"split 90/10 over v1/v2, shadow v{SHADOW[0]}",
}


@dataclass(frozen=True)
class Round:
    """One load round of one scenario, and the CPU the api process spent meanwhile."""

    result: LoadResult
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.result.rps

    @property
    def p50_ms(self) -> float:
        return self.result.p50_ms

    @property
    def p99_ms(self) -> float:
        return self.result.p99_ms

    @property
    def errors(self) -> int:
        return self.result.errors

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds of the api process per request."""
        return self.cpu_s * 1e3 / max(1, self.result.requests)


@dataclass(frozen=True)
class Scenario:
    model: str
    connections: int
    url: str
    body: bytes

    @property
    def label(self) -> str:
        return f"{self.model} c{self.connections}"


async def _put(client: httpx2.AsyncClient, path: str, body: Any) -> None:
    response = await client.put(
        path, content=msgspec.json.encode(body), headers={"content-type": "application/json"}
    )
    if response.status_code != 200:
        raise RuntimeError(f"PUT {path}: {response.status_code} {response.text}")


async def _prepare(client: httpx2.AsyncClient) -> dict[str, bytes]:
    """Each model trained VERSIONS times and routed as its scenario needs; its 1-row body."""
    features, target, records = data.iris()
    rows = data.rows_of(records, features, 1)
    bodies = {}
    for name in WHAT:
        await api.create_model(
            client,
            name,
            "sklearn.linear_model.LogisticRegression",
            target=target,
            settings={"max_iter": 1000},
        )
        for _ in range(VERSIONS):
            await api.train(client, name, records)
        request: dict[str, Any] = {"data": rows}
        if name == "ali":
            await _put(client, f"/models/{name}/aliases/{ALIAS}", {"version": VERSIONS})
            request["alias"] = ALIAS
        elif name == "spl":
            await _put(client, f"/models/{name}/traffic", {"split": SPLIT})
        elif name == "sha":
            await _put(client, f"/models/{name}/traffic", {"split": SPLIT, "shadow": SHADOW})
        bodies[name] = msgspec.json.encode(request)
        await _check(client, name, bodies[name])
    return bodies


async def _check(client: httpx2.AsyncClient, name: str, body: bytes) -> None:
    """A sanity check (the right versions answer), and every answering version's first load."""
    split = name in ("spl", "sha")
    expected = {1, 2} if split else {VERSIONS}
    seen = set()
    for _ in range(50):
        response = await client.post(
            f"/models/{name}/predict", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code != 200:
            raise RuntimeError(f"predict {name}: {response.status_code} {response.text}")
        seen.add(api.decode(response)["version"])
    if not (seen <= expected if split else seen == expected):
        raise RuntimeError(f"predict {name}: answered by versions {seen}, expected {expected}")


async def _measure(
    api_pid: int, scenarios: list[Scenario], config: Config
) -> dict[str, list[Round]]:
    for s in scenarios:
        await load(s.url, connections=s.connections, seconds=config.warmup, body=s.body)
    results: dict[str, list[Round]] = {s.label: [] for s in scenarios}
    for rep in range(config.reps):
        for s in scenarios if rep % 2 == 0 else scenarios[::-1]:
            before = cpu_seconds(api_pid)
            r = await load(s.url, connections=s.connections, seconds=config.seconds, body=s.body)
            done = Round(r, cpu_seconds(api_pid) - before)
            results[s.label].append(done)
            print(
                f"  round {rep + 1}: {s.label:8} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  CPU {done.cpu_ms:6.3f} ms/req  errors {r.errors}",
                flush=True,
            )
    return results


async def _figures(client: httpx2.AsyncClient) -> dict[str, Any]:
    """`GET /models/sha/traffic` once every shadow has finished and the counts are flushed."""
    previous: Any = None
    for _ in range(30):  # the figures are flushed to Redis once a second
        await asyncio.sleep(1.5)
        response = await client.get("/models/sha/traffic")
        if response.status_code != 200:
            raise RuntimeError(f"GET traffic: {response.status_code} {response.text}")
        body: dict[str, Any] = api.decode(response)
        if body["figures"] == previous:
            return body
        previous = body["figures"]
    raise RuntimeError("the traffic figures kept changing after the load stopped")


async def run(config: Config) -> Section:
    section = Section("Registry: aliases, traffic split and shadows (issue 13)")
    async with running_service() as svc, svc.client() as client:
        bodies = await _prepare(client)
        scenarios = [
            Scenario(name, c, f"{svc.url}/models/{name}/predict", bodies[name])
            for c in CONCURRENCY
            for name in WHAT
        ]
        results = await _measure(svc.api.pid, scenarios, config)
        traffic = await _figures(client)
    _report(section, scenarios, results, traffic, config)
    return section


# --- the report ---------------------------------------------------------------------------------


def _paired(a: list[Round], b: list[Round], value: Any) -> list[float]:
    return [value(x, y) for x, y in zip(a, b, strict=True)]


def _verdict(values: list[float], limit: float | None, fmt: str) -> str:
    middle = format(med(values), fmt)
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    if limit is None:
        return f"**{middle}** ({lo}–{hi})"
    return f"**{middle}** ({lo}–{hi}) {'met' if med(values) <= limit else '**missed**'}"


def _report(
    section: Section,
    scenarios: list[Scenario],
    results: dict[str, list[Round]],
    traffic: dict[str, Any],
    config: Config,
) -> None:
    section.line(
        f"One api process, four models trained alike (iris LogisticRegression, {VERSIONS}"
        f" versions each), 1-row predictions. Load tool: {describe_tool()}. Each scenario"
        f" {config.reps} × {config.seconds:g} s after a warm-up, interleaved round by round (the"
        " order reversed every other round); median (min–max) over the rounds."
    )
    section.line()
    rows = []
    for s in scenarios:
        rs = results[s.label]
        rows.append(
            [
                f"`{s.model}` c{s.connections}",
                WHAT[s.model],
                spread([r.rps for r in rs], ".0f"),
                spread([r.p50_ms for r in rs], ".2f"),
                spread([r.p99_ms for r in rs], ".2f"),
                spread([r.cpu_ms for r in rs], ".3f"),
                str(sum(r.errors for r in rs)),
            ]
        )
    section.table(
        ["scenario", "routing", "req/s", "p50 ms", "p99 ms", "CPU ms/request", "errors"], rows
    )
    targets = []
    for name, limit in RPS_LIMIT.items():
        cur, other = results["cur c64"], results[f"{name} c64"]
        ratio = _paired(cur, other, lambda a, b: a.rps / b.rps)
        targets.append([f"req/s `cur` ÷ `{name}` c64", _verdict(ratio, limit, ".3f"), f"≤ {limit}"])
    for name in RPS_LIMIT:
        cur, other = results["cur c1"], results[f"{name} c1"]
        gap = _paired(cur, other, lambda a, b: b.p50_ms - a.p50_ms)
        targets.append(
            [
                f"p50 `{name}` − `cur` c1, ms",
                _verdict(gap, P50_LIMIT_MS, "+.3f"),
                f"≤ {P50_LIMIT_MS}",
            ]
        )
    for name, limit in RPS_LIMIT.items():
        cur, other = results["cur c64"], results[f"{name} c64"]
        ratio = _paired(cur, other, lambda a, b: b.cpu_ms / a.cpu_ms)
        targets.append(
            [f"CPU/request `{name}` ÷ `cur` c64", _verdict(ratio, limit, ".3f"), f"≤ {limit}"]
        )
    for name in RPS_LIMIT:
        cur, other = results["cur c1"], results[f"{name} c1"]
        gap = _paired(cur, other, lambda a, b: b.cpu_ms - a.cpu_ms)
        targets.append([f"CPU/request `{name}` − `cur` c1, ms", _verdict(gap, None, "+.3f"), ""])
    section.line(
        "Targets: a ratio or difference within each round (the scenarios ran back to back), then"
        " the median (min–max) over the rounds. The CPU rows hold the c64 cost to the req/s"
        " target: at c64 the api is CPU-bound, so its throughput follows CPU per request, which"
        " neighbours disturb less than req/s (it still moves with how requests happen to"
        " batch); at c1 they say what each request costs, a shadow's work included."
    )
    section.line()
    section.table(["measure", "value", "target"], targets)
    _shadow(section, traffic)


def _shadow(section: Section, traffic: dict[str, Any]) -> None:
    split = [f for f in traffic["figures"] if f["role"] == "split"]
    shadows = [f for f in traffic["figures"] if f["role"] == "shadow"]
    answered = sum(f["requests"] for f in split)
    rows = [
        [
            f"v{f['version']} ({f['role']})",
            f"{f['requests']:,}",
            str(f["errors"]),
            f"{f['dropped']:,}" if f["role"] == "shadow" else "",
            "" if f["agreement"] is None else f"{f['agreement']:.4f}",
            f"{f['p50_ms']}",
            f"{f['p99_ms']}",
        ]
        for f in sorted(traffic["figures"], key=lambda f: (f["role"] != "split", f["version"]))
    ]
    section.line(
        "`GET /models/sha/traffic` after the run (warm-up and sanity checks included; latencies"
        " are the service's own, from 20 %-wide histogram buckets):"
    )
    section.line()
    section.table(
        ["version", "requests", "errors", "dropped", "agreement", "p50 ms", "p99 ms"], rows
    )
    for f in shadows:
        seen = f["requests"] + f["dropped"]
        share = seen / answered if answered else 0.0
        section.line(
            f"Shadow v{f['version']}: requests + dropped = {seen:,} of the {answered:,} the split"
            f" answered ({share:.1%}); {f['dropped']:,} dropped"
            f" ({f['dropped'] / max(1, seen):.1%}), {f['errors']} errors, agreement"
            f" {f['agreement']}."
        )
    if not shadows:
        section.line("**No shadow figures**: the shadow never ran.")
