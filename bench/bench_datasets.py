"""Datasets: CSV ingest against `psql \\copy`, CSV export, a filtered query, and api memory.

    .venv/bin/python -m bench.bench_datasets [--rows N] [--rounds R] [--queries Q] [--keep]
    (from the repository root; also run by `python -m bench datasets`)

One run writes a CSV of `--rows` rows (default 1 000 000) and 10 columns (integers, floats, a
boolean, text with some quoted commas, timestamps) to a temp file, starts the api (bench
harness: fresh database, `python -m service api`, auth off, body limit raised) and then, in
`--rounds` alternating rounds (bounded):

- ingest: `POST /datasets?name=...` streaming the file (text/csv) vs `psql \\copy` of the same
  file into an equivalent table (same column types, the same hidden identity primary key, the
  same FORCE_NULL). Ratio = api rows/s ÷ psql rows/s (target ≥ 0.5).
- memory: the api process's peak RSS during each upload minus its RSS before it (sampled from
  /proc every 10 ms, and VmHWM after resetting it), against the file's size.
- export: `GET /datasets/{name}/rows` with `Accept: text/csv`, read to the end, vs
  `psql \\copy (SELECT ...) TO '/dev/null' CSV`.
- query: `--queries` requests of a filtered query over all rows with `limit=1000`
  (`where=a > 0.5`, `where=flag = true`, `order_by=id`), latency median and p90.

Every number is measured in this one run; nothing is compared with a stored result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec

from bench.harness import rss_bytes, running_service
from service.query import quote_ident
from service.repositories.datasets import SQL_TYPES, qualified_name

MB = 1024 * 1024
HEADER = ["id", "a", "b", "c", "d", "n1", "n2", "flag", "label", "at"]
CHUNK = 1024 * 1024


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\n")
        lines = []
        for i in range(rows):
            label = f'"label {i % 997}, quoted"' if i % 10 == 0 else f"label {i % 997}"
            at = (start + timedelta(seconds=i * 7)).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(
                f"{i},{rng.random():.6f},{rng.random() * 100:.3f},{rng.gauss(0, 1):.9f},"
                f"{rng.random():.4f},{rng.randint(0, 1000)},{rng.randint(-50, 50)},"
                f"{'true' if rng.random() < 0.5 else 'false'},{label},{at}\n"
            )
            if len(lines) == 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


class RssWatch:
    """Peak RSS of a process while a block runs, from VmRSS samples and a reset VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssWatch:
        _reset_peak(self.pid)
        self.before = self.peak = rss_bytes(self.pid)
        self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(0.01)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, rss_bytes(self.pid), _hwm(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.before


def _reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def psql(database_url: str, command: str) -> float:
    """Seconds `psql -c command` takes (connection included, as for the api's upload)."""
    start = time.perf_counter()
    subprocess.run(
        ["psql", database_url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
    )
    return time.perf_counter() - start


async def ingest(client: httpx2.AsyncClient, path: Path, name: str) -> tuple[float, Any]:
    start = time.perf_counter()
    response = await client.post(
        "/datasets",
        params={"name": name},
        content=file_chunks(path),
        headers={"content-type": "text/csv"},
    )
    seconds = time.perf_counter() - start
    if response.status_code != 201:
        raise RuntimeError(f"upload: {response.status_code} {response.text[:500]}")
    return seconds, msgspec.json.decode(response.content)


async def export(client: httpx2.AsyncClient, name: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    lines = size = 0
    async with client.stream(
        "GET", f"/datasets/{name}/rows", headers={"accept": "text/csv"}
    ) as response:
        if response.status_code != 200:
            raise RuntimeError(f"export: {response.status_code}")
        async for chunk in response.aiter_bytes():
            lines += chunk.count(b"\n")
            size += len(chunk)
    return time.perf_counter() - start, lines - 1, size


def equivalent_table(columns: list[dict[str, str]]) -> str:
    defs = ['"__row" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY']
    defs += [f"{quote_ident(c['name'])} {SQL_TYPES[c['type']]}" for c in columns]  # type: ignore[index]
    return f"CREATE TABLE psql_copy ({', '.join(defs)})"


def copy_command(path: Path, columns: list[dict[str, str]]) -> str:
    names = ", ".join(quote_ident(c["name"]) for c in columns)
    force_null = ", ".join(quote_ident(c["name"]) for c in columns if c["type"] != "text")
    return (
        f"\\copy psql_copy ({names}) FROM '{path}' WITH (FORMAT csv, HEADER true, "
        f"FORCE_NULL ({force_null}))"
    )


async def table_of(database_url: str, name: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        dataset_id = await conn.fetchval("SELECT id FROM dataset_catalogue WHERE name = $1", name)
    finally:
        await conn.close()
    return qualified_name(int(dataset_id))


QUERIES = {
    "upload order": {"where": ["a > 0.5", "flag = true"], "limit": "1000"},
    "order_by=id": {"where": ["a > 0.5", "flag = true"], "limit": "1000", "order_by": "id"},
}


async def queries(client: httpx2.AsyncClient, name: str, count: int) -> dict[str, list[float]]:
    """Latencies of each filtered query, alternating, `count` times each."""
    times: dict[str, list[float]] = {label: [] for label in QUERIES}
    for _ in range(count):
        for label, params in QUERIES.items():
            start = time.perf_counter()
            response = await client.get(f"/datasets/{name}/rows", params=params)
            times[label].append(time.perf_counter() - start)
            items = msgspec.json.decode(response.content).get("items", [])
            if response.status_code != 200 or len(items) != 1000:
                raise RuntimeError(f"query: {response.status_code} {response.text[:300]}")
    return times


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s ({seconds:.2f} s)"


async def run(rows: int, rounds: int, query_count: int, keep: bool) -> None:
    if shutil.which("psql") is None:
        raise SystemExit("psql is needed for the reference copy")
    tmp = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    path = tmp / "data.csv"
    started = time.perf_counter()
    write_csv(path, rows)
    size = path.stat().st_size
    print(
        f"CSV: {rows:,} rows × {len(HEADER)} columns, {size / MB:.1f} MB "
        f"(written in {time.perf_counter() - started:.1f} s)"
    )
    try:
        async with (
            running_service(worker=False, http__max_body_bytes=4 * size) as service,
            service.client(timeout=1800) as client,
        ):
            await report(service, client, path, rows, size, rounds, query_count)
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


async def report(
    service: Any,
    client: httpx2.AsyncClient,
    path: Path,
    rows: int,
    size: int,
    rounds: int,
    query_count: int,
) -> None:
    api_s, psql_s, growth, export_s, psql_export_s = [], [], [], [], []
    columns: list[dict[str, str]] = []
    for i in range(rounds):
        async with RssWatch(service.api.pid) as watch:
            seconds, meta = await ingest(client, path, f"bench{i}")
        if meta["rows"] != rows:
            raise RuntimeError(f"ingested {meta['rows']} rows, expected {rows}")
        columns = meta["columns"]
        api_s.append(seconds)
        growth.append(watch.growth)
        psql(service.database_url, "DROP TABLE IF EXISTS psql_copy")
        psql(service.database_url, equivalent_table(columns))
        psql_s.append(psql(service.database_url, copy_command(path, columns)))
        print(
            f"round {i + 1}: api {rate(rows, seconds)}, psql {rate(rows, psql_s[-1])}, "
            f"ratio {psql_s[-1] / seconds:.2f}; api RSS +{watch.growth / MB:.1f} MB "
            f"(from {watch.before / MB:.0f} MB)"
        )
        async with RssWatch(service.api.pid) as watch:
            seconds, exported, _ = await export(client, f"bench{i}")
        if exported != rows:
            raise RuntimeError(f"exported {exported} rows, expected {rows}")
        export_s.append(seconds)
        select = ", ".join(quote_ident(c["name"]) for c in columns)
        table = await table_of(service.database_url, f"bench{i}")
        psql_export_s.append(
            psql(
                service.database_url,
                f"\\copy (SELECT {select} FROM {table} ORDER BY __row) TO '/dev/null' "
                "WITH (FORMAT csv, HEADER true)",
            )
        )
        print(
            f"         export {rate(rows, seconds)} (RSS +{watch.growth / MB:.1f} MB), "
            f"psql \\copy to /dev/null {rate(rows, psql_export_s[-1])}"
        )
    latencies = await queries(client, "bench0", query_count)
    ratios = [p / a for a, p in zip(api_s, psql_s, strict=True)]
    print()
    print(
        f"ingest ratio api/psql (rows/s): median {statistics.median(ratios):.2f}, "
        f"per round {', '.join(f'{r:.2f}' for r in ratios)} (target ≥ 0.5)"
    )
    print(
        f"ingest api: {rate(rows, statistics.median(api_s))} median; "
        f"psql \\copy: {rate(rows, statistics.median(psql_s))} median"
    )
    print(
        f"api RSS growth during a {size / MB:.0f} MB upload: max {max(growth) / MB:.1f} MB "
        f"(target well under 200 MB)"
    )
    export_ratio = statistics.median(p / a for a, p in zip(export_s, psql_export_s, strict=True))
    print(
        f"export api: {rate(rows, statistics.median(export_s))} median; "
        f"ratio to psql \\copy TO /dev/null {export_ratio:.2f}"
    )
    for label, times in latencies.items():
        ms = sorted(t * 1000 for t in times)
        print(
            f"filtered query over {rows:,} rows, limit 1000, {label} (total counted too): "
            f"median {statistics.median(ms):.1f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.1f} ms"
            f" over {len(ms)} requests"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", 1_000_000)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the CSV file")
    args = parser.parse_args()
    asyncio.run(run(args.rows, max(1, min(args.rounds, 10)), max(1, args.queries), args.keep))


if __name__ == "__main__":
    main()
