"""bench/RESULTS.md: the machine, the load tool and every case's section."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine(load_tool: str) -> list[str]:
    return [
        f"- nproc: {os.cpu_count()}",
        f"- CPU: {_cpu_model()}",
        f"- memory: {_memory()}",
        f"- Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"- load tool: {load_tool}",
        f"- commit: {_commit()}; date: {datetime.date.today().isoformat()}",
    ]


def write(sections: list[str], load_tool: str, command: str) -> Path:
    head = [
        "# Benchmark results",
        "",
        f"Written by `{command}` (full length). Absolute numbers depend on this noisy machine;",
        "compare the ratios, which are against floors measured in the same run.",
        "",
        *machine(load_tool),
        "",
    ]
    RESULTS.write_text("\n".join(head) + "\n" + "\n".join(sections))
    return RESULTS
