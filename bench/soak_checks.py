"""The soak's invariants, each checked once the load has stopped and the grace period passed.

Each returns a `Verdict`: what was measured and whether it held. The database is read
directly as a superuser (row security does not apply), so nothing the api hides is missed.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass

import asyncpg
import httpx2
import msgspec

from bench.common import pct
from bench.soak_faults import Fleet, Injector, Window
from bench.soak_load import JSON, Ledger
from service.repositories.datasets import qualified_name

RECOVERY_BOUND = 30.0  # seconds from SIGKILL to the job running again elsewhere
P99_BOUND = 1.0  # seconds; this 2-core machine also runs the soak's own load and proxies
RSS_GROWTH_BOUND = 0.15  # share of growth after warm-up taken as flat (allocator noise)


@dataclass
class Verdict:
    invariant: str
    measured: str
    held: bool


def _in_outage(at: float, windows: list[Window]) -> bool:
    return any(w.covers(at) for w in windows)


async def jobs_final(conn: asyncpg.Connection, ledger: Ledger) -> Verdict:
    rows = await conn.fetch("SELECT id::text, status FROM jobs")
    status = {r["id"]: r["status"] for r in rows}
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    missing = [j for j in ledger.jobs if j not in status]
    active = counts.get("queued", 0) + counts.get("running", 0)
    # exactly one final state: a succeeded fit made exactly one version, any other none
    mismatched = await conn.fetchval(
        """
        SELECT count(*) FROM (
            SELECT j.id, j.status, count(v.job_id) AS versions FROM jobs j
            LEFT JOIN model_versions v ON v.job_id = j.id
            WHERE j.kind IN ('train', 'update') GROUP BY j.id, j.status
        ) x WHERE versions <> (CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END)
        """
    )
    measured = (
        f"{len(ledger.jobs)} accepted, {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))};"
        f" missing {len(missing)}; versions ≠ outcome {mismatched}"
    )
    held = not missing and active == 0 and mismatched == 0
    stuck = await conn.fetch(
        "SELECT id, kind, status, attempts, dispatches, created_at, started_at FROM jobs"
        " WHERE status IN ('queued', 'running') ORDER BY created_at"
    )
    for row in stuck:  # for the log: what a stuck job looked like
        print(f"soak: still active at the end: {dict(row)}", flush=True)
    return Verdict("every job reached exactly one final state, none left active", measured, held)


def recovery(injector: Injector) -> Verdict:
    seconds = [r.seconds for r in injector.recoveries]
    orphans = sum(r.orphan_fit_alive for r in injector.recoveries)
    if not seconds:
        return Verdict("a SIGKILLed worker's job runs again elsewhere ≤ 30 s", "no kill", False)
    shown = ", ".join("never" if s is None else f"{s:.1f} s" for s in seconds)
    held = all(s is not None and s <= RECOVERY_BOUND for s in seconds)
    measured = f"{shown} ({len(seconds)} kill(s); orphaned fit children seen: {orphans})"
    return Verdict("a SIGKILLed worker's job runs again elsewhere ≤ 30 s", measured, held)


async def artifacts(conn: asyncpg.Connection, client: httpx2.AsyncClient) -> Verdict:
    """Every version predicts: its artifact is fetched, verified (HMAC) and loaded."""
    versions = await conn.fetch(
        "SELECT m.name, v.version FROM model_versions v JOIN models m ON m.id = v.model_id"
    )
    gate = asyncio.Semaphore(4)
    failed: list[str] = []

    async def one(name: str, version: int) -> None:
        body = msgspec.json.encode({"data": [{"a": 0.1, "b": 0.2}], "version": version})
        async with gate:
            r = await client.post(f"/models/{name}/predict", content=body, headers=JSON)
        if r.status_code != 200:
            failed.append(f"{name} v{version}: {r.status_code}")

    await asyncio.gather(*(one(v["name"], v["version"]) for v in versions))
    measured = f"{len(versions) - len(failed)}/{len(versions)} versions predict"
    if failed:
        measured += f"; failed: {', '.join(failed[:5])}"
    return Verdict("every version's artifact verifies and loads", measured, not failed)


async def datasets(conn: asyncpg.Connection, ledger: Ledger) -> Verdict:
    """A stored dataset holds exactly the rows sent: an upload is all or nothing."""
    wrong: list[str] = []
    present = 0
    for name, sent in ledger.datasets.items():
        ident = await conn.fetchval("SELECT id FROM dataset_catalogue WHERE name = $1", name)
        if ident is None:
            continue
        present += 1
        count = await conn.fetchval(f"SELECT count(*) FROM {qualified_name(ident)}")
        if count != sent:
            wrong.append(f"{name}: {count} of {sent}")
    measured = f"{present} stored of {len(ledger.datasets)} attempted; wrong counts {len(wrong)}"
    if wrong:
        measured += f" ({', '.join(wrong[:5])})"
    return Verdict("every uploaded dataset has exactly its rows", measured, not wrong)


def server_errors(ledger: Ledger, windows: list[Window]) -> Verdict:
    inside = outside = closed_early = 0
    codes: dict[int, int] = {}
    for call in ledger.calls:
        if call.status and call.status < 500:
            continue
        if call.kind == "over-limit body" and call.status == 0:
            # the api answers 413 on Content-Length and closes before reading the body; the
            # client, still writing, may see the reset instead of the answer
            closed_early += 1
            continue
        if call.status in (0, 503, 504) and _in_outage(call.at, windows):
            inside += 1
            continue
        outside += 1
        print(f"soak: outside any outage: {call}", flush=True)
        codes[call.status] = codes.get(call.status, 0) + 1
    shown = ", ".join(f"{'no answer' if k == 0 else k}: {v}" for k, v in sorted(codes.items()))
    measured = (
        f"{len(ledger.calls)} requests; 503/504 in outage windows {inside};"
        f" other 5xx or no answer {outside}{f' ({shown})' if shown else ''};"
        f" over-limit bodies closed before the 413 was read {closed_early}"
    )
    return Verdict("no 5xx but 503/504 in an injected outage", measured, outside == 0)


def unexpected(ledger: Ledger) -> Verdict:
    bad = [c for c in ledger.calls if c.kind in ("bomb", "over-limit body", "bad json")]
    measured = f"{len(bad)} bad requests and bombs; unexpected answers {len(ledger.unexpected)}"
    if ledger.unexpected:
        measured += f" (first: {ledger.unexpected[0][:160]})"
    return Verdict(
        "bombs and bad requests are the 4xx they should be", measured, not ledger.unexpected
    )


def p99(ledger: Ledger, windows: list[Window]) -> Verdict:
    times = [
        c.seconds
        for c in ledger.calls
        if c.kind == "predict" and c.status == 200 and not _in_outage(c.at, windows)
    ]
    if not times:
        return Verdict("p99 of predictions outside outages", "no predictions", False)
    value = pct(times, 0.99)
    measured = f"p50 {pct(times, 0.5) * 1e3:.0f} ms, p99 {value * 1e3:.0f} ms ({len(times)})"
    return Verdict(
        f"p99 of predictions outside outages ≤ {P99_BOUND:g} s", measured, value <= P99_BOUND
    )


def worker_exits(fleet: Fleet) -> Verdict:
    exits = list(fleet.exited.values())
    measured = f"SIGKILLed {len(fleet.killed)}; exited on their own {len(exits)}"
    if exits:
        measured += f" ({'; '.join(exits)})"
    return Verdict("workers ride out the outages (none exits on its own)", measured, not exits)


def stalls(injector: Injector, read_timeout: float) -> Verdict:
    released = [s.released_after for s in injector.stalls]
    bound = read_timeout + 5.0
    shown = ", ".join("never" if s is None else f"{s:.1f} s" for s in released) or "none"
    held = bool(released) and all(s is not None and s <= bound for s in released)
    return Verdict(f"a stalled upload is cut off (read_timeout {read_timeout:g} s)", shown, held)


def memory(injector: Injector, warm_until: float) -> Verdict:
    """Each process's median RSS in the last quarter against the first after warm-up: the
    run's first quarter, and as long again of the process's own life (for a replacement)."""
    growth: list[str] = []
    held = True
    series = sorted(injector.rss.items())
    span = warm_until - min((samples[0][0] for _, samples in series), default=warm_until)
    for name, samples in series:
        # a replacement worker has its own warm-up (imports, forkserver, first fits)
        since = max(warm_until, samples[0][0] + span)
        after = [rss for at, rss in samples if at >= since]
        if len(after) < 8:
            continue  # a replacement worker that lived too short to judge
        quarter = len(after) // 4
        first, last = statistics.median(after[:quarter]), statistics.median(after[-quarter:])
        change = (last - first) / first
        held = held and change <= RSS_GROWTH_BOUND
        growth.append(f"{name} {first / 2**20:.0f}→{last / 2**20:.0f} MiB")
    measured = "; ".join(growth) or "too few samples"
    return Verdict(
        f"RSS flat after warm-up (≤ +{RSS_GROWTH_BOUND:.0%})", measured, held and bool(growth)
    )
