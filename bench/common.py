"""What every bench case shares: run length, summaries of repeated measurements, the report."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    """Each load scenario runs `reps` times for `seconds`; `quick` also shrinks data sizes."""

    seconds: float = 10.0
    reps: int = 3
    quick: bool = False

    @property
    def warmup(self) -> float:
        return min(2.0, self.seconds / 2)


QUICK = Config(seconds=2.0, reps=3, quick=True)


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], fmt: str = ".1f") -> str:
    """`median (min–max)` of repeated measurements."""
    if len(values) == 1:
        return format(values[0], fmt)
    lo, hi = min(values), max(values)
    return f"{format(med(values), fmt)} ({format(lo, fmt)}–{format(hi, fmt)})"


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of the values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


@dataclass
class Section:
    """A case's results: printed as they come, and kept for bench/RESULTS.md."""

    title: str
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        print(f"\n## {self.title}\n", flush=True)

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.line("| " + " | ".join(header) + " |")
        self.line("|" + "---|" * len(header))
        for row in rows:
            self.line("| " + " | ".join(row) + " |")
        self.line()

    def markdown(self) -> str:
        return f"## {self.title}\n\n" + "\n".join(self.lines).rstrip() + "\n"
