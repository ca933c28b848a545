"""The tables of the tenancy case (bench/tenancy.py): new against old, where a list's cost goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.common import Config, Section, med, spread
from bench.load import describe_tool
from bench.pg_probe import Untouched

if TYPE_CHECKING:
    from bench.tenancy import Round, Scenario


def _paired(new: list[Round], old: list[Round], attr: str) -> list[float]:
    return [getattr(n, attr) / getattr(o, attr) for n, o in zip(new, old, strict=True)]


def _ratio(values: list[float], ok: bool | None = None) -> str:
    verdict = "" if ok is None else (" met" if ok else " **missed**")
    return f"**{med(values):.3f}** ({min(values):.3f}–{max(values):.3f}){verdict}"


def _pair(rounds: list[Round], attr: str, fmt: str) -> str:
    return spread([getattr(r, attr) for r in rounds], fmt)


def report(
    section: Section,
    scenarios: list[Scenario],
    results: dict[tuple[str, str], list[Round]],
    proof: Untouched,
    config: Config,
) -> None:
    section.line(
        f"{config.reps} rounds × {config.seconds:g} s per scenario and side, after a warm-up;"
        f" load tool: {describe_tool()}. Median (min–max) over the rounds; a ratio is new ÷ old"
        " within each round (the sides ran back to back), then the median of those. CPU is the"
        " user + system time of the api process and of its database's PostgreSQL backends per"
        " request: the cost itself, and far less disturbed than req/s and p50 by whatever else"
        " the machine runs. Limits: new ÷ old ≤ the target for CPU and p50, ≥ 1 ÷ target for"
        " req/s."
    )
    section.line()
    rows = []
    for s in scenarios:
        new, old = results[s.label, "new"], results[s.label, "old"]
        rps, p50 = _paired(new, old, "rps"), _paired(new, old, "p50_ms")
        cpu = _paired(new, old, "cpu_ms")
        rows.append(
            [
                s.label,
                f"{_pair(new, 'rps', '.0f')} / {_pair(old, 'rps', '.0f')}",
                f"{_pair(new, 'p50_ms', '.2f')} / {_pair(old, 'p50_ms', '.2f')}",
                f"{_pair(new, 'cpu_ms', '.3f')} / {_pair(old, 'cpu_ms', '.3f')}",
                str(sum(r.errors for r in new + old)),
                _ratio(cpu, med(cpu) <= s.limit),
                _ratio(rps, med(rps) >= 1 / s.limit),
                _ratio(p50, med(p50) <= s.limit),
                f"{s.limit:.2f}",
            ]
        )
    section.table(
        [
            "scenario",
            "req/s new / old",
            "p50 ms new / old",
            "CPU ms/request new / old",
            "errors",
            "CPU new ÷ old",
            "req/s new ÷ old",
            "p50 new ÷ old",
            "target",
        ],
        rows,
    )
    _breakdown(section, scenarios, results)
    section.line(
        f"Cached predictions and PostgreSQL (new side): {proof.predictions:,} predictions"
        f" (1 s at c1, 1 s at c64) between two keepalives of the change listener;"
        f" transactions counted in the database meanwhile (`pg_stat_database` xact_commit +"
        f" xact_rollback): **{proof.delta}**; pooled connections that ran a statement:"
        f" **{proof.pool_statements}**. Control: one `GET /models/iris` right after counted"
        f" {proof.control} transaction(s). {'Passed' if proof.ok else '**FAILED**'}."
    )


def _breakdown(
    section: Section, scenarios: list[Scenario], results: dict[tuple[str, str], list[Round]]
) -> None:
    """Lists: the mechanism (new1 ÷ old) apart from the other tenant's rows (new ÷ new1)."""

    def ratio(s: Scenario, a: str, b: str, attr: str) -> str:
        return _ratio(_paired(results[s.label, a], results[s.label, b], attr))

    rows = [
        [
            s.label,
            _pair(results[s.label, "new1"], "cpu_ms", ".3f"),
            ratio(s, "new1", "old", "cpu_ms"),
            ratio(s, "new1", "old", "p50_ms"),
            ratio(s, "new", "new1", "cpu_ms"),
            ratio(s, "new", "new1", "p50_ms"),
        ]
        for s in scenarios
        if s.body is None
    ]
    section.line(
        "Where a list's cost goes: new1 is this tree on a database without the second tenant,"
        " so new1 ÷ old is the mechanism (transaction, `set_config`, policies, `models_service`)"
        " and new ÷ new1 is the other tenant's rows in the same tables."
    )
    section.line()
    section.table(
        [
            "scenario",
            "new1 CPU ms/request",
            "CPU new1 ÷ old",
            "p50 new1 ÷ old",
            "CPU new ÷ new1",
            "p50 new ÷ new1",
        ],
        rows,
    )
