"""Issue 15: what the predict path adds to a request, this tree against an earlier commit.

    python -m bench overhead [--seconds S] [--reps N]   (BENCH_BEFORE=<rev>)

Two apis run side by side in one run: "before" (the code of BENCH_BEFORE, by default where this
branch left `main`, exported with `git archive` into the run's temp dir) and "after" (this
tree), each with its own worker and database, the same two models trained through each (iris
LogisticRegression, diabetes RandomForestRegressor with 100 trees: `bench/predict.py`).
BENCH_TREES="label=path,..." adds further sides (variants of this tree). Every round runs
single-row predictions at c1 and c64 on every side, plus the Hypercorn hello floor
(`bench/hello.py`), the order of the sides alternating between rounds, so drift hits all
alike. The in-process floor (json → estimator → json) is measured once, with the after side's
iris artifact. Each api's CPU time per request (user + system, from /proc) is measured too:
neighbours on a shared machine disturb it far less than latency or req/s.

Targets (issue 15): iris c1 p50 − in-process ≤ 0.6 ms; iris c64 req/s ≥ 0.6 × hello c64; iris
c64 p99 ≤ 2 × hello c64 p99; diabetes (RandomForest) c64 req/s ≥ 4 × its c1 req/s.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import Config, Section, med, spread
from bench.floor import InProcessFloor, load_estimator
from bench.harness import ROOT, Service, hello_server, running_service
from bench.load import LoadResult, describe_tool, load
from bench.pg_probe import cpu_seconds
from bench.predict import _train_models

CONNECTIONS = (1, 64)
MODELS = ("iris", "diabetes")


@dataclass
class Side:
    label: str
    tree: Path
    svc: Service | None = None
    bodies: dict[str, bytes] | None = None


@contextlib.contextmanager
def _exported(rev: str) -> Iterator[Path]:
    """The tree of `rev`, from `git archive` (no worktree to clean up after a crash)."""
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        archive = Path(tmp) / "tree.tar"
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev],
            check=True,
            capture_output=True,
        )
        tree = Path(tmp) / "tree"
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        yield tree


def _fork_point() -> str:
    """The commit where this branch left `main` (the same migrations, which `tree` needs)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()[:10]


def _extra_sides() -> list[Side]:
    sides = []
    for item in filter(None, os.environ.get("BENCH_TREES", "").split(",")):
        label, _, path = item.partition("=")
        sides.append(Side(label.strip(), Path(path.strip()).resolve()))
    return sides


async def run(config: Config) -> Section:
    rev = os.environ.get("BENCH_BEFORE") or _fork_point()
    section = Section("Predict overhead, before and after (issue 15)")
    section.line(
        f"Load tool: {describe_tool()}. Before: `{rev}`; after: this tree. Each scenario "
        f"{config.reps} × {config.seconds:g} s after a warm-up, sides alternating round by round;"
    )
    section.line("median (min–max) over the rounds.")
    section.line()
    with _exported(rev) as before_tree:
        sides = [Side("before", before_tree), Side("after", ROOT), *_extra_sides()]
        async with contextlib.AsyncExitStack() as stack:
            for side in sides:
                side.svc = await stack.enter_async_context(running_service(tree=side.tree))
                async with side.svc.client() as client:
                    prepared = await _train_models(client)
                side.bodies = {name: prepared[name][1] for name in MODELS}
            after = sides[1]
            assert after.svc is not None and after.bodies is not None
            floor = InProcessFloor(
                "iris",
                await load_estimator(after.svc, "iris"),
                prepared["iris"][0],
                after.bodies["iris"],
                prepared["iris"][2],
            ).measure(config)
            with hello_server() as hello:
                results, cpu = await _measure(sides, hello, after.bodies["iris"], config)
    _report(section, sides, results, cpu, med(floor.one_us) / 1e3)
    return section


Scenario = tuple[str, str, int, bytes, int]  # label, url, connections, body, api pid (0: none)


def _scenarios(sides: list[Side], hello: str, body: bytes) -> list[Scenario]:
    out = []
    for side in sides:
        assert side.svc is not None and side.bodies is not None
        for name in MODELS:
            for c in CONNECTIONS:
                url = f"{side.svc.url}/models/{name}/predict"
                label = f"{side.label} {name} c{c}"
                out.append((label, url, c, side.bodies[name], side.svc.api.pid))
    out += [(f"hello c{c}", f"{hello}/", c, body, 0) for c in CONNECTIONS]
    return out


async def _measure(
    sides: list[Side], hello: str, body: bytes, config: Config
) -> tuple[dict[str, list[LoadResult]], dict[str, list[float]]]:
    """Load results, and the api's CPU µs per request, per scenario and round."""
    scenarios = _scenarios(sides, hello, body)
    for _, url, c, payload, _ in scenarios:
        await load(url, connections=c, seconds=config.warmup, body=payload)
    results: dict[str, list[LoadResult]] = {s[0]: [] for s in scenarios}
    cpu: dict[str, list[float]] = {s[0]: [] for s in scenarios if s[4]}
    for rep in range(config.reps):
        ordered = scenarios if rep % 2 == 0 else _reversed_sides(scenarios, sides)
        for label, url, c, payload, pid in ordered:
            before = cpu_seconds(pid) if pid else 0.0
            r = await load(url, connections=c, seconds=config.seconds, body=payload)
            results[label].append(r)
            used = ""
            if pid:
                cpu[label].append((cpu_seconds(pid) - before) / max(1, r.requests) * 1e6)
                used = f"  cpu {cpu[label][-1]:6.0f} µs/req"
            print(
                f"  round {rep + 1}: {label:22} {r.rps:8.1f} req/s  p50 {r.p50_ms:7.2f} ms"
                f"  p99 {r.p99_ms:7.2f} ms  errors {r.errors}{used}",
                flush=True,
            )
    return results, cpu


def _reversed_sides(scenarios: list[Scenario], sides: list[Side]) -> list[Scenario]:
    order = [s.label for s in reversed(sides)]
    rank = {label: i for i, label in enumerate(order)}
    return sorted(scenarios, key=lambda s: rank.get(s[0].split()[0], len(order)))


def _report(
    section: Section,
    sides: list[Side],
    results: dict[str, list[LoadResult]],
    cpu: dict[str, list[float]],
    floor_ms: float,
) -> None:
    rows = []
    for label, rs in results.items():
        rows.append(
            [
                label,
                spread([r.rps for r in rs]),
                spread([r.p50_ms for r in rs], ".2f"),
                spread([r.p99_ms for r in rs], ".2f"),
                spread(cpu[label], ".0f") if label in cpu else "",
                str(sum(r.errors for r in rs)),
            ]
        )
    section.table(["scenario", "req/s", "p50 ms", "p99 ms", "api CPU µs/req", "errors"], rows)
    section.line(f"In-process floor, iris 1 row: {floor_ms * 1e3:.1f} µs per call.")
    section.line()

    def per_round(label: str, attr: str) -> list[float]:
        return [getattr(r, attr) for r in results[label]]

    hello_rps = {c: per_round(f"hello c{c}", "rps") for c in CONNECTIONS}
    hello_p99 = per_round("hello c64", "p99_ms")
    header = ["figure", *(s.label for s in sides), "target"]
    figures: list[list[str]] = [
        ["iris c1 p50 − in-process, ms"],
        ["iris c1 p50 − hello c1 p50, ms"],
        ["iris c64 req/s ÷ hello c64"],
        ["iris c64 p99 ÷ hello c64 p99"],
        ["diabetes c64 req/s ÷ diabetes c1"],
        ["iris c1 req/s ÷ hello c1"],
        ["iris c1 api CPU µs/request"],
        ["iris c64 api CPU µs/request"],
    ]
    for side in sides:
        s = side.label
        iris_p50 = per_round(f"{s} iris c1", "p50_ms")
        figures[0].append(spread([p - floor_ms for p in iris_p50], ".2f"))
        hello_p50 = per_round("hello c1", "p50_ms")
        figures[1].append(spread([a - b for a, b in zip(iris_p50, hello_p50, strict=True)], ".2f"))
        c64 = per_round(f"{s} iris c64", "rps")
        figures[2].append(spread(_ratios(c64, hello_rps[64]), ".3f"))
        figures[3].append(spread(_ratios(per_round(f"{s} iris c64", "p99_ms"), hello_p99), ".2f"))
        forest_c1 = per_round(f"{s} diabetes c1", "rps")
        forest = _ratios(per_round(f"{s} diabetes c64", "rps"), forest_c1)
        figures[4].append(spread(forest, ".2f"))
        figures[5].append(spread(_ratios(per_round(f"{s} iris c1", "rps"), hello_rps[1]), ".3f"))
        figures[6].append(spread(cpu[f"{s} iris c1"], ".0f"))
        figures[7].append(spread(cpu[f"{s} iris c64"], ".0f"))
    targets = ["≤ 0.6", "", "≥ 0.6", "≤ 2", "≥ 4", "", "", ""]
    for row, target in zip(figures, targets, strict=True):
        row.append(target)
    section.line("Per round, then median (min–max) over the rounds:")
    section.line()
    section.table(header, figures)


def _ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y if y else 0.0 for x, y in zip(a, b, strict=True)]
