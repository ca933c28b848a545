"""The chaos soak: a mixed load against api + 2 workers while faults are injected, then the
invariants, printed as a markdown table; the exit status is 1 when one does not hold.

    python -m bench.soak [--minutes 10] [--grace 120] [--write]      (make soak)

The api and workers are real processes (`python -m service api|worker`) on a fresh database
`soak_<random>` and a Redis queue of their own, reaching PostgreSQL and Redis through loopback
TCP proxies (bench/soak_proxy.py) that the fault injector cuts, so the machine's shared servers
are never restarted. Load: bench/soak_load.py; faults: bench/soak_faults.py; invariants:
bench/soak_checks.py. `--write` adds the table to bench/RESULTS.md (section "Chaos soak").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx2

from bench import report, soak_checks
from bench.harness import (
    Process,
    create_database,
    delete_queue_keys,
    drop_database,
    find_servers,
    free_port,
    service_env,
    wait_ready,
)
from bench.soak_checks import Verdict
from bench.soak_faults import Fleet, Injector
from bench.soak_load import Ledger, Load, create_models
from bench.soak_proxy import Proxy

WORKERS = 2
WARM_UP = 0.25  # share of the run after which RSS must stay flat
MAX_JSON_BYTES = 1024 * 1024
READ_TIMEOUT = 10.0
SETTINGS = {
    # the soak submits more jobs at once than a tenant's default share; 429 is tested elsewhere
    "limits__active_jobs_per_tenant": 1000,
    "http__max_json_bytes": MAX_JSON_BYTES,
    "http__read_timeout": READ_TIMEOUT,
    "logging__level": "WARNING",
    "worker__metrics_port": 0,
}


@dataclass
class Run:
    url: str
    db_url: str  # direct, for the checks and the injector
    api: Process
    injector: Injector


def _proxied(url: str, port: int) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.netloc.rpartition(':')[0]}:{port}").geturl()


def _env(db_url: str, redis_url: str, queue: str) -> dict[str, str]:
    base = {
        "SERVICE__HTTP__BIND": f"127.0.0.1:{free_port()}",
        "SERVICE__DATABASE__URL": db_url,
        "SERVICE__REDIS__URL": redis_url,
        "SERVICE__REDIS__QUEUE_NAME": queue,
        "SERVICE__ARTIFACTS__HMAC_KEY": secrets.token_hex(32),
        "SERVICE__AUTH__MODE": "disabled",
    }
    return service_env(base, SETTINGS)


async def _drive(run: Run, minutes: float, grace: float) -> tuple[Ledger, float]:
    """The load and the faults for `minutes`, then up to `grace` s for the jobs to finish."""
    ledger = Ledger()
    stop = asyncio.Event()
    limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx2.AsyncClient(base_url=run.url, timeout=30.0, limits=limits) as client:
        await create_models(client)
        start = time.monotonic()
        warm_until = time.time() + WARM_UP * minutes * 60
        load = Load(client, ledger, MAX_JSON_BYTES)
        tasks = [asyncio.ensure_future(g) for g in load.generators(stop)]
        tasks.append(asyncio.ensure_future(run.injector.run(client, stop, start)))
        sampler = asyncio.ensure_future(run.injector.sample_rss({"api": run.api}, stop))
        settled = asyncio.Event()  # workers are supervised through the grace period too
        supervisor = asyncio.ensure_future(run.injector.fleet.supervise(settled))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*tasks)), minutes * 60)
        stop.set()
        print("soak: load stopped; waiting for the faults in progress and the jobs", flush=True)
        await asyncio.gather(*tasks, sampler)
        await _settle(run.db_url, grace)
        settled.set()
        await supervisor
    return ledger, warm_until


async def _settle(db_url: str, grace: float) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            active = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
            )
            if active == 0:
                return
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


async def _check(run: Run, ledger: Ledger, warm_until: float) -> list[Verdict]:
    injector = run.injector
    conn = await asyncpg.connect(run.db_url)
    try:
        async with httpx2.AsyncClient(base_url=run.url, timeout=60.0) as client:
            return [
                await soak_checks.jobs_final(conn, ledger),
                soak_checks.recovery(injector),
                soak_checks.worker_exits(injector.fleet),
                await soak_checks.artifacts(conn, client),
                await soak_checks.datasets(conn, ledger),
                soak_checks.server_errors(ledger, injector.windows),
                soak_checks.unexpected(ledger),
                soak_checks.p99(ledger, injector.windows),
                soak_checks.stalls(injector, READ_TIMEOUT),
                soak_checks.memory(injector, warm_until),
            ]
    finally:
        await conn.close()


def _table(verdicts: list[Verdict], windows_text: str) -> str:
    lines = ["| invariant | measured | held |", "|---|---|---|"]
    for v in verdicts:
        lines.append(f"| {v.invariant} | {v.measured} | {'yes' if v.held else '**NO**'} |")
    return "\n".join(lines) + f"\n\nOutage windows: {windows_text}\n"


def _windows(injector: Injector, t0: float) -> str:
    shown = [f"{w.kind} {w.start - t0:.0f}–{w.end - t0:.0f} s" for w in injector.windows]
    return "; ".join(shown) or "none"


async def soak(minutes: float, grace: float, logs: Path | None) -> tuple[list[Verdict], str]:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        servers = find_servers(Path(tmp))
        pg, rd = urlsplit(servers.postgres), urlsplit(servers.redis)
        postgres = Proxy(pg.hostname or "127.0.0.1", pg.port or 5432)
        redis = Proxy(rd.hostname or "127.0.0.1", rd.port or 6379)
        db_name, queue = f"soak_{secrets.token_hex(6)}", f"soak:{secrets.token_hex(6)}"
        started: list[Process] = []
        fleet: Fleet | None = None
        try:
            await postgres.restore()
            await redis.restore()
            db_url = await create_database(servers.postgres, db_name)
            env = _env(_proxied(db_url, postgres.port), _proxied(servers.redis, redis.port), queue)
            api = Process("api", [sys.executable, "-m", "service", "api"], env, Path(tmp))
            started.append(api)
            fleet = Fleet(env, Path(tmp))
            for _ in range(WORKERS):
                fleet.start()
            url = f"http://127.0.0.1:{env['SERVICE__HTTP__BIND'].rpartition(':')[2]}"
            await wait_ready(url, [api, *fleet.workers])
            t0 = time.time()
            injector = Injector(fleet, redis, postgres, db_url, url)
            run = Run(url, db_url, api, injector)
            ledger, warm_until = await _drive(run, minutes, grace)
            verdicts = await _check(run, ledger, warm_until)
            return verdicts, _table(verdicts, _windows(injector, t0))
        finally:
            processes = [*(fleet.workers if fleet else []), *started]
            for process in processes:
                process.stop()
            if logs is not None:
                _keep_logs(processes, logs)
            await drop_database(servers.postgres, db_name)
            delete_queue_keys(servers.redis, queue)
            await postgres.close()
            await redis.close()
            servers.stop()


def _keep_logs(processes: list[Process], logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for process in processes:
        shutil.copy(process.log, logs / process.log.name)


def write_results(table: str, minutes: float) -> Path:
    """Replaces (or appends) the "Chaos soak" section of bench/RESULTS.md."""
    title = "## Chaos soak"
    head = [
        title,
        "",
        f"`python -m bench.soak --minutes {minutes:g}` on this machine (2 cores shared with other",
        "work: timings and RSS are noisy; the invariants are not timings, except the p99 and the",
        "recovery bound).",
        "",
        *report.machine("httpx2 (the soak's own generators)"),
        "",
    ]
    text = report.RESULTS.read_text() if report.RESULTS.exists() else "# Benchmark results\n"
    before, _, rest = text.partition(title)
    after = rest[rest.find("\n## ") :] if "\n## " in rest else ""
    report.RESULTS.write_text(before.rstrip() + "\n\n" + "\n".join(head) + "\n" + table + after)
    return report.RESULTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--grace", type=float, default=120.0, help="seconds for jobs to finish")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this directory")
    parser.add_argument("--write", action="store_true", help="add the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    verdicts, table = asyncio.run(soak(args.minutes, args.grace, args.logs))
    print("\n" + table)
    if args.write:
        print(f"wrote {write_results(table, args.minutes)}")
    failed = [v.invariant for v in verdicts if not v.held]
    if failed:
        print(f"soak: {len(failed)} invariant(s) did not hold", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
