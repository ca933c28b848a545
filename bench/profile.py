"""Where a single-row prediction spends its time on the api's event loop.

    python -m bench profile [--model iris|diabetes] [--connections C] [--seconds S] [--top N]
                            [--keep FILE] [--rows N]

Starts the service with its api under `bench.profiled_api`, trains the model through the api,
warms up, then profiles the event loop (cProfile) while the load generator sends 1-row
predictions for `--seconds`, and prints the top functions by own time and by cumulative time,
in µs per request. cProfile's hooks inflate small Python functions several-fold, so read the
table as shares and call counts, not as absolute cost: the load bench (`python -m bench
predict`) measures the real thing. Estimator calls run on the prediction threads and do not
appear, except as the event loop's wait for them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import tempfile
from pathlib import Path

import msgspec

from bench import api, data
from bench.harness import running_service
from bench.load import describe_tool, load
from bench.predict import MODELS, _bodies


async def profile(
    model: str,
    connections: int,
    seconds: float,
    top: int,
    keep: Path | None = None,
    rows: int = 1,
) -> None:
    model_type, settings, dataset = MODELS[model]
    features, target, records = dataset()
    one, _ = _bodies(features, records)
    if rows > 1:  # the columnar form: what a many-row request costs beyond the estimator
        picked = data.rows_of(records, features, rows)
        one = msgspec.json.encode(
            {"columns": features, "rows": [[r[f] for f in features] for r in picked]}
        )
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        stats_path = Path(tmp) / "api.prof"
        async with running_service(profiled=stats_path) as svc:
            async with svc.client() as client:
                await api.create_model(client, model, model_type, target=target, settings=settings)
                await api.train(client, model, records)
            url = f"{svc.url}/models/{model}/predict"
            await load(url, connections=connections, seconds=min(2.0, seconds), body=one)
            os.kill(svc.api.pid, signal.SIGUSR1)
            result = await load(url, connections=connections, seconds=seconds, body=one)
            os.kill(svc.api.pid, signal.SIGUSR2)
            for _ in range(100):  # the api writes the file from its signal handler
                if stats_path.exists():
                    break
                await asyncio.sleep(0.05)
        print(
            f"{model} {rows} row(s) c{connections}, {seconds:g} s profiled with {describe_tool()}: "
            f"{result.requests} requests, {result.rps:.0f} req/s under the profiler, "
            f"p50 {result.p50_ms:.2f} ms, errors {result.errors}"
        )
        stats = pstats.Stats(str(stats_path))
        if keep is not None:
            stats.dump_stats(keep)
        _print(stats, max(1, result.requests), top)


def _print(stats: pstats.Stats, requests: int, top: int) -> None:
    entries = stats.stats  # type: ignore[attr-defined]
    rows: list[tuple[str, int, float, float]] = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in entries.items():
        where = _short(filename)
        label = f"{where}:{line}({name})" if line else name
        rows.append((label, calls, tottime, cumtime))
    # Waiting in epoll is the loop being idle (at c1: the client's turn), not work.
    busy = sum(r[2] for r in rows if "epoll" not in r[0])
    print(f"event loop busy {busy / requests * 1e6:.0f} µs per request (under the profiler)")
    print("(a coroutine counts one call per resumption, so an `async def` shows 2× or more)")
    for title, key in (("own time", 2), ("cumulative time", 3)):
        print(f"\ntop {top} by {title} (µs per request; calls per request):")
        ordered = sorted(rows, key=lambda r: r[2] if key == 2 else r[3], reverse=True)
        for label, calls, tottime, cumtime in ordered[:top]:
            print(
                f"  {tottime / requests * 1e6:8.1f} own {cumtime / requests * 1e6:8.1f} cum"
                f"  {calls / requests:6.2f}×  {label}"
            )


def _short(filename: str) -> str:
    """A path from the package down (`starlette/routing.py`), for a readable table."""
    for marker in ("site-packages/", "/lib/python3."):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker.startswith("/lib") else tail
    root = str(Path(__file__).resolve().parents[1]) + "/"
    return filename.removeprefix(root)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__)
    parser.add_argument("--model", choices=list(MODELS), default="iris")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1, help="rows per request (columns form)")
    parser.add_argument("--keep", type=Path, help="also write the cProfile statistics here")
    args = parser.parse_args(argv)
    asyncio.run(profile(args.model, args.connections, args.seconds, args.top, args.keep, args.rows))
    return 0
