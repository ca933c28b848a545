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


HEAD = """# Benchmark results

Absolute numbers depend on this noisy machine; compare the ratios, which are against floors
measured in the same run. Each section says which run wrote it, on what.
"""


def write(sections: list[str], load_tool: str, command: str) -> Path:
    """Replaces the sections of the cases that ran, matched by their `## ` title, and keeps the
    others: the file gathers runs of different cases, made on different days, so a run of one
    case must not wipe the rest. A section that is new goes at the end."""
    stamp = [f"Written by `{command}` (full length).", "", *machine(load_tool), ""]
    head, kept = _split(RESULTS.read_text()) if RESULTS.exists() else (HEAD, {})
    for section in sections:
        title, _, body = section.partition("\n")
        kept[title] = "\n".join([title, "", *stamp, body.lstrip("\n")])
    RESULTS.write_text(
        head.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in kept.values())
    )
    return RESULTS


def _split(text: str) -> tuple[str, dict[str, str]]:
    """The text before the first `## ` heading, and each section by its heading line (headings
    inside fenced code, such as a traceback's, do not count)."""
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current = head
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("## ") and not fenced:
            current = sections.setdefault(line, [])
        current.append(line)
    return "\n".join(head), {title: "\n".join(lines) + "\n" for title, lines in sections.items()}
