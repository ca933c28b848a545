"""Run the benchmarks: every case in turn, or the ones named.

    python -m bench [CASE ...] [--quick] [--seconds S] [--reps N]
    python -m bench profile [--model M] [--connections C] [--seconds S] [--top N] [--keep F]

Cases: predict (throughput and latency, then memory), memory, jobs, models_list, auth
(bench/bench_auth.py), datasets (bench/bench_datasets.py, when present), tenancy (this tree
against the commit before tenants), registry (predictions by alias, through a traffic split
and with a shadow, against the current version's), events (webhook delivery lag, and the
api's throughput with 200 open event streams), inference (the predict path in every input form,
the Open Inference Protocol included, against in-process floors and Hypercorn hello), tracing
(a prediction with tracing off against the code before it, and with tracing on at 10 %
sampling) and overhead (what the predict path adds to a request, against a given earlier
commit: bench/overhead.py). `--quick` (or BENCH_QUICK=1) runs each load scenario 3 × 2 s on
smaller data, to check that a case works;
BENCH_SECONDS / BENCH_REPS set the length too. A full-length run replaces the sections of the
cases it ran in bench/RESULTS.md and keeps the others. BENCH_LOAD=python uses the Python load
generator even when wrk exists.
`profile` is not a case: it prints where a 1-row prediction spends the api's event loop
(bench/profile.py). The chaos soak is not a case either: `make soak` (`python -m bench.soak`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from bench import (
    events,
    external,
    inference,
    jobs,
    memory,
    models_list,
    overhead,
    predict,
    profile,
    registry,
    report,
    tenancy,
    tracing,
)
from bench.common import QUICK, Config, Section
from bench.load import describe_tool

Case = Callable[[Config], Coroutine[Any, Any, Section]]

CASES: dict[str, list[Case]] = {
    "predict": [predict.run, memory.run],
    "memory": [memory.run],
    "jobs": [jobs.run],
    "models_list": [models_list.run],
    "auth": [external.auth],
    "datasets": [external.datasets],
    "tenancy": [tenancy.run],
    "registry": [registry.run],
    "events": [events.run],
    "inference": [inference.run],
    "tracing": [tracing.run],
    "overhead": [overhead.run],
}


def _config(args: argparse.Namespace) -> Config:
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    base = QUICK if quick else Config()
    seconds = args.seconds or float(os.environ.get("BENCH_SECONDS", 0) or base.seconds)
    reps = args.reps or int(os.environ.get("BENCH_REPS", 0) or base.reps)
    return Config(seconds=max(1.0, seconds), reps=max(1, reps), quick=quick)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["profile"]:
        return profile.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", choices=[[], *CASES], metavar="CASE")
    parser.add_argument("--quick", action="store_true", help="3 × 2 s per scenario, small data")
    parser.add_argument("--seconds", type=float, help="seconds per measurement round")
    parser.add_argument("--reps", type=int, help="rounds per scenario")
    args = parser.parse_args(argv)
    names = args.cases or list(CASES)
    config = _config(args)
    print(
        f"bench: {', '.join(names)}; {config.reps} × {config.seconds:g} s per scenario"
        f"{' (quick)' if config.quick else ''}; load tool: {describe_tool()}"
    )
    sections: list[str] = []
    failed: list[str] = []
    for name in names:
        for case in CASES[name]:
            try:
                sections.append(asyncio.run(case(config)).markdown())
            except Exception:
                traceback.print_exc()
                failed.append(name)
                sections.append(f"## {name}\n\nFailed:\n\n```\n{traceback.format_exc()}```\n")
    if not config.quick:
        command = "python -m bench " + " ".join(args.cases or [])
        path = report.write(sections, describe_tool(), command.strip())
        print(f"\nwrote {path}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
