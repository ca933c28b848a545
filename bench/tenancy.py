"""Issue 11: what tenancy costs a model list and a cached prediction, against the code before it.

Apis run side by side in one bench run: this tree ("new": row-level security forced, the
statements under `models_service`, `set_config('app.tenant', …, true)` at the start of every
transaction) and the commit before tenants ("old", checked out with `git worktree add --detach`
into the run's temp dir, migrated by its own migrations into its own database, run by its own
code). All hold the same caller-visible data: 10 000 models (1 000 with --quick) inserted
with SQL, plus `iris` (LogisticRegression) trained through each one's api and worker. The new
database also holds a second tenant with as many models under the same names, so the policies
really filter; a third api ("new1", this tree, its database without the second tenant) splits
the lists' cost into the mechanism (new1 ÷ old) and the other tenant's rows (new ÷ new1).

Scenarios (auth disabled on every side, so only the database side of tenancy differs): the models
bench's two-term `where` lists at concurrency 16 and 1, and the cached 1-row `iris` prediction at
concurrency 1 and 64. Every round runs each scenario on every side back to back, the order
alternating between rounds, so drift hits all alike; ratios are new ÷ old per round.

A cached prediction must not touch PostgreSQL: bench/pg_probe.py counts the new database's
transactions over a burst of them, and the case fails unless that count is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx2
import msgspec

from bench import api, data, harness
from bench.common import Config, Section
from bench.load import LoadResult, load
from bench.models_list import QUERIES
from bench.pg_probe import CpuMeter, untouched
from bench.tenancy_report import report

OLD_COMMIT = "73c20e3"  # the last commit before tenants
OTHER_TENANT = "other"
LIST_LIMIT = 1.10  # new cost ÷ old cost, lists
PREDICT_LIMIT = 1.02  # new cost ÷ old cost, cached predictions

INSERT_NEW = """
INSERT INTO models (tenant, name, model_type, title, description, tags, settings, target,
                    created_by)
SELECT $3, 'model-' || i, $1, 'Model ' || i, 'bench model number ' || i,
       ARRAY['t' || (i % 10), 'bench'], '{}'::jsonb, 'y', 'user' || (i % 20)
FROM generate_series(1, $2) AS i
"""
INSERT_OLD = """
INSERT INTO models (name, model_type, title, description, tags, settings, target, created_by)
SELECT 'model-' || i, $1, 'Model ' || i, 'bench model number ' || i,
       ARRAY['t' || (i % 10), 'bench'], '{}'::jsonb, 'y', 'user' || (i % 20)
FROM generate_series(1, $2) AS i
"""


class TreeProcess(harness.Process):
    """A `harness.Process` started in another source tree."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], logdir: Path, cwd: Path):
        self.name = name
        self.log = logdir / f"{name}.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        self.pid = self.popen.pid


@dataclass
class Side:
    label: str  # "new", "new1" (this tree, no second tenant) or "old"
    url: str
    db_name: str
    db_url: str
    queue: str
    api: harness.Process
    worker: harness.Process


@dataclass(frozen=True)
class Scenario:
    label: str
    path: str
    connections: int
    body: bytes | None
    limit: float


def _git(*args: str) -> None:
    subprocess.run(["git", "-C", str(harness.ROOT), *args], check=True, capture_output=True)


@contextlib.contextmanager
def _old_tree(tmp: Path) -> Iterator[Path]:
    path = tmp / "old-tree"
    _git("worktree", "add", "--detach", str(path), OLD_COMMIT)
    try:
        yield path
    finally:
        _git("worktree", "remove", "--force", str(path))
        _git("worktree", "prune")


async def _start(label: str, tree: Path, servers: harness.Servers, tmp: Path) -> Side:
    db_name = f"bench_{label}_{secrets.token_hex(5)}"
    queue = f"bench:{secrets.token_hex(6)}"
    conn = await asyncpg.connect(servers.postgres)
    try:
        await conn.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await conn.close()
    db_url = harness.with_database(servers.postgres, db_name)
    env = harness._env(servers, db_url, queue, {})
    env["PYTHONPATH"] = str(tree)
    env["SERVICE_WORKER_ID"] = f"bench-{label}-{queue}"
    migrate = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "migrate",
        cwd=tree,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await migrate.communicate()
    if migrate.returncode != 0:
        raise RuntimeError(f"{label} migrate failed:\n{out.decode(errors='replace')}")
    python = [sys.executable, "-m", "service"]
    api_process = TreeProcess(f"api-{label}", [*python, "api"], env, tmp, tree)
    worker = TreeProcess(f"worker-{label}", [*python, "worker"], env, tmp, tree)
    url = f"http://127.0.0.1:{env['SERVICE__HTTP__BIND'].rpartition(':')[2]}"
    side = Side(label, url, db_name, db_url, queue, api_process, worker)
    await harness.wait_ready(url, [api_process, worker])
    return side


async def _stop(side: Side, servers: harness.Servers) -> None:
    side.worker.stop()
    side.api.stop()
    await harness.drop_database(servers.postgres, side.db_name)
    harness.delete_queue_keys(servers.redis, side.queue)


async def _fill(side: Side, models: int) -> None:
    """`models` models for the caller (and as many for another tenant on the new side)."""
    conn = await asyncpg.connect(side.db_url)
    try:
        model_type = await conn.fetchval(
            "SELECT name FROM model_types WHERE name = 'sklearn.linear_model.LinearRegression'"
        )
        if model_type is None:
            raise RuntimeError(f"{side.label}: the api has not synced the model-type catalogue")
        if side.label.startswith("new"):
            for tenant in ("default", OTHER_TENANT)[: 2 if side.label == "new" else 1]:
                await conn.execute(INSERT_NEW, model_type, models, tenant)
        else:
            await conn.execute(INSERT_OLD, model_type, models)
        await conn.execute("VACUUM ANALYZE models")  # nothing left for autovacuum mid-run
    finally:
        await conn.close()


async def _train_iris(side: Side) -> bytes:
    """Train `iris` through the api and the worker; the 1-row body, already predicted once."""
    features, target, records = data.iris()
    body = msgspec.json.encode({"data": data.rows_of(records, features, 1)})
    async with httpx2.AsyncClient(base_url=side.url, timeout=120) as client:
        settings = {"max_iter": 1000}
        model_type = "sklearn.linear_model.LogisticRegression"
        await api.create_model(client, "iris", model_type, target=target, settings=settings)
        await api.train(client, "iris", records)
        response = await client.post(
            "/models/iris/predict", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code != 200:
            raise RuntimeError(f"{side.label} predict: {response.status_code} {response.text}")
    return body


async def _totals(sides: list[Side], paths: list[str], section: Section) -> None:
    """Both sides answer every list alike: the other tenant's models are filtered out."""
    async with httpx2.AsyncClient(timeout=60) as client:
        for path in paths:
            seen = {}
            for side in sides:
                response = await client.get(side.url + path)
                if response.status_code != 200:
                    raise RuntimeError(f"{side.label} {path}: {response.status_code}")
                body = response.json()
                tenants = {item.get("tenant") for item in body["items"]}
                if side.label.startswith("new") and tenants != {"default"}:
                    raise RuntimeError(f"new {path}: items of tenants {tenants}")
                seen[side.label] = (body["total"], len(body["items"]))
            if len(set(seen.values())) != 1:
                raise RuntimeError(f"{path}: the sides disagree: {seen}")
            total, items = seen["new"]
            section.line(f"`GET {path}`: total {total}, {items} items on both sides")
    section.line()


def _scenarios(body: bytes) -> list[Scenario]:
    out = []
    for label, terms in QUERIES.items():
        path = f"/models?{urlencode([('limit', '100'), *terms])}"
        for c in (16, 1):
            out.append(Scenario(f"list: {label} c{c}", path, c, None, LIST_LIMIT))
    for c in (1, 64):
        out.append(
            Scenario(f"iris predict 1 row c{c}", "/models/iris/predict", c, body, PREDICT_LIMIT)
        )
    return out


@dataclass(frozen=True)
class Round:
    """One load round on one side, with the CPU the api and its backends spent on it."""

    result: LoadResult
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.result.rps

    @property
    def p50_ms(self) -> float:
        return self.result.p50_ms

    @property
    def errors(self) -> int:
        return self.result.errors

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per request (api process + PostgreSQL backends)."""
        return self.cpu_s * 1e3 / max(1, self.result.requests)


async def _measure(
    admin_url: str, sides: list[Side], scenarios: list[Scenario], config: Config
) -> dict[tuple[str, str], list[Round]]:
    def takes(side: Side, s: Scenario) -> bool:
        # "new1" is the same code as "new": only a list reads the table they differ in
        return side.label != "new1" or s.body is None

    for s in scenarios:
        for side in sides:
            if takes(side, s):
                url, c = side.url + s.path, s.connections
                await load(url, connections=c, seconds=config.warmup, body=s.body)
    results: dict[tuple[str, str], list[Round]] = {}
    conn = await asyncpg.connect(admin_url)
    try:
        for rep in range(config.reps):
            for s in scenarios:
                for side in sides if rep % 2 == 0 else sides[::-1]:
                    if not takes(side, s):
                        continue
                    meter = CpuMeter(conn, side.db_name, side.api.pid)
                    await meter.start()
                    r = await load(
                        side.url + s.path,
                        connections=s.connections,
                        seconds=config.seconds,
                        body=s.body,
                    )
                    done = Round(r, await meter.stop())
                    results.setdefault((s.label, side.label), []).append(done)
                    print(
                        f"  round {rep + 1}: {side.label:4} {s.label:40} {r.rps:8.1f} req/s"
                        f"  p50 {r.p50_ms:7.2f} ms  CPU {done.cpu_ms:6.3f} ms/req"
                        f"  errors {r.errors}",
                        flush=True,
                    )
    finally:
        await conn.close()
    return results


# --- the run ------------------------------------------------------------------------------------


async def run(config: Config) -> Section:
    section = Section("Tenancy: row-level security and the per-transaction tenant (issue 11)")
    models = 1_000 if config.quick else 10_000
    with harness._servers_and_tmp() as (servers, tmp), _old_tree(tmp) as old_tree:
        sides: list[Side] = []
        try:
            for label, tree in (("new", harness.ROOT), ("new1", harness.ROOT), ("old", old_tree)):
                sides.append(await _start(label, tree, servers, tmp))
            bodies = [await _train_iris(side) for side in sides]
            for side in sides:  # its sweeps would count as the database's transactions
                side.worker.stop()
                await _fill(side, models)
            scenarios = _scenarios(bodies[0])
            section.line(
                f"new: this tree; old: commit {OLD_COMMIT}, the last before tenants, its own"
                " code, migrations and database. Auth disabled on both."
            )
            section.line(
                f"Each side: {models:,} models of the caller (the new side also {models:,} of"
                f" tenant `{OTHER_TENANT}`, same names) and `iris` trained through its api."
            )
            section.line()
            await _totals(sides, sorted({s.path for s in scenarios if s.body is None}), section)
            new = sides[0]
            proof = await untouched(servers.postgres, new.db_name, new.url, bodies[0])
            results = await _measure(servers.postgres, sides, scenarios, config)
        finally:
            for side in sides:
                await _stop(side, servers)
    report(section, scenarios, results, proof, config)
    if not proof.ok:
        raise RuntimeError(f"cached predictions touched PostgreSQL: {proof}")
    return section
