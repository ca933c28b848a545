"""The cost of the per-caller rate limit: single-row iris predictions against two api processes
running side by side, one with `limits.rate_per_second` off, one with it on (a bucket so large
that nothing is refused, so every request pays the Redis check), alternating which goes first
round by round so both see the same machine.

    python -m bench.limits_ab [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from bench.harness import running_service
from bench.load import LoadResult, load
from bench.predict import _train_models


async def main(rounds: int, seconds: float) -> None:
    async with (
        running_service() as off,
        running_service(limits__rate_per_second=100_000, limits__burst=1_000_000) as on,
    ):
        services = {"off": off, "on": on}
        bodies = {}
        for label, svc in services.items():
            async with svc.client() as client:
                bodies[label] = (await _train_models(client))["iris"][1]
        results: dict[tuple[int, str], list[LoadResult]] = {}
        for round_ in range(rounds):
            order = ["off", "on"] if round_ % 2 == 0 else ["on", "off"]
            for connections in (1, 64):
                for label in order:
                    url = f"{services[label].url}/models/iris/predict"
                    result = await load(
                        url, connections=connections, seconds=seconds, body=bodies[label]
                    )
                    results.setdefault((connections, label), []).append(result)
        for connections in (1, 64):
            got = {label: results[(connections, label)] for label in services}
            ratios = [a.rps / b.rps for a, b in zip(got["on"], got["off"], strict=True)]
            line = " | ".join(
                f"{label} {statistics.median(r.rps for r in rs):.0f} req/s, "
                f"p50 {statistics.median(r.p50_ms for r in rs):.2f} ms"
                for label, rs in got.items()
            )
            print(f"c{connections}: {line} | on/off req/s {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.seconds))
