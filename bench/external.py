"""Cases that other engineers own, run as their own scripts: bench_auth and bench_datasets."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bench.common import Config, Section
from bench.harness import ROOT

TIMEOUT = 1800.0


async def _script(title: str, module: str, args: list[str]) -> Section:
    section = Section(title)
    if not (ROOT / Path(*module.split("."))).with_suffix(".py").exists():
        section.line(f"`{module}` is not there yet; skipped.")
        return section
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{module} ran longer than {TIMEOUT:.0f} s") from None
    section.line(f"`python -m {' '.join([module, *args])}`:")
    section.line()
    section.line("```")
    for line in out.decode(errors="replace").rstrip().splitlines():
        section.line(line)
    section.line("```")
    if process.returncode:
        raise RuntimeError(f"{module} exited with status {process.returncode}")
    return section


async def auth(config: Config) -> Section:
    args = ["--requests", "300", "--rounds", "6"] if config.quick else []
    return await _script("Authentication cost (bench/bench_auth.py)", "bench.bench_auth", args)


async def datasets(config: Config) -> Section:
    args = ["--rows", "100000", "--rounds", "1", "--queries", "5"] if config.quick else []
    return await _script("Datasets (bench/bench_datasets.py)", "bench.bench_datasets", args)
