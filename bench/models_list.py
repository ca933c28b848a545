"""Issue 4: listing models with a two-term `where` over 10 000 models, against `/livez`.

The models are inserted straight into the database with one INSERT … SELECT generate_series
(using a model type the api synced at start), then `GET /models?where=…&where=…&limit=100` and
`GET /livez` are loaded at concurrency 16, interleaved round by round.
"""

from __future__ import annotations

from urllib.parse import urlencode

import asyncpg

from bench.common import Config, Section, med, spread
from bench.load import LoadResult, describe_tool, load

MODELS = 10_000
CONNECTIONS = 16
QUERIES = {
    "tags CONTAINS + created_by =": [
        ("where", "tags CONTAINS t3"),
        ("where", "created_by = user13"),
    ],
    "title LIKE + created_by =": [
        ("where", 'title LIKE "Model 1%"'),
        ("where", "created_by = user13"),
    ],
}

INSERT = """
INSERT INTO models (name, model_type, title, description, tags, settings, target, created_by)
SELECT 'model-' || i, $1, 'Model ' || i, 'bench model number ' || i,
       ARRAY['t' || (i % 10), 'bench'], '{}'::jsonb, 'y', 'user' || (i % 20)
FROM generate_series(1, $2) AS i
"""


async def insert_models(database_url: str, count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        model_type = await conn.fetchval(
            "SELECT name FROM model_types WHERE name = 'sklearn.linear_model.LinearRegression'"
        ) or await conn.fetchval("SELECT name FROM model_types ORDER BY name LIMIT 1")
        if model_type is None:
            raise RuntimeError("the api has not synced the model-type catalogue")
        # The api runs without auth, so its caller is the default tenant; a new row's tenant
        # comes from the transaction's `app.tenant` (an insert without one fails).
        await conn.execute("SELECT set_config('app.tenant', 'default', false)")
        await conn.execute(INSERT, model_type, count)
        await conn.execute("ANALYZE models")
    finally:
        await conn.close()


async def run(config: Config) -> Section:
    import httpx2

    from bench.harness import running_service

    section = Section("Model lists (issue 4)")
    async with running_service(worker=False) as svc:
        await insert_models(svc.database_url, MODELS)
        urls = {
            label: f"{svc.url}/models?{urlencode(q + [('limit', '100')])}"
            for label, q in QUERIES.items()
        }
        urls["/livez"] = f"{svc.url}/livez"
        async with httpx2.AsyncClient() as client:
            for label, url in urls.items():
                response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"{label}: {response.status_code} {response.text}")
                if label != "/livez":
                    body = response.json()
                    section.line(
                        f"`{label}`: total {body['total']}, {len(body['items'])} items per page"
                    )
        section.line()
        for url in urls.values():
            await load(url, connections=CONNECTIONS, seconds=config.warmup)
        results: dict[str, list[LoadResult]] = {label: [] for label in urls}
        for _ in range(config.reps):
            for label, url in urls.items():
                results[label].append(
                    await load(url, connections=CONNECTIONS, seconds=config.seconds)
                )
    section.line(
        f"{MODELS:,} models; concurrency {CONNECTIONS}; {config.reps} × {config.seconds:g} s; "
        f"load tool: {describe_tool()}."
    )
    section.line()
    rows = []
    livez = med([r.rps for r in results["/livez"]])
    for label, rs in results.items():
        rps = [r.rps for r in rs]
        ratio = "1" if label == "/livez" else f"**{med(rps) / livez:.3f}**"
        rows.append(
            [
                label,
                spread(rps),
                spread([r.p50_ms for r in rs], ".2f"),
                spread([r.p99_ms for r in rs], ".2f"),
                str(sum(r.errors for r in rs)),
                ratio,
            ]
        )
    section.table(["request", "req/s", "p50 ms", "p99 ms", "errors", "req/s ÷ /livez"], rows)
    return section
