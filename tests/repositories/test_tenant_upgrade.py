"""Upgrading a database from before tenants: every row it held belongs to the configured default
tenant, its dataset tables are guarded and owned by a role the service cannot act as, and that
tenant (only) sees and predicts its old model, whose artifact still verifies."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx2
import msgspec
import pytest

from service.repositories.datasets import ROW_ID
from service.repositories.migrator import migrate
from service.settings import Settings
from tests.factories import (
    HMAC_KEY,
    ClientFactory,
    Servers,
    Worker,
    json_of,
    make_dataset,
    make_model,
    run_job,
    tenant_app,
)
from tests.old_schemas import copy_table, database_before

pytestmark = pytest.mark.anyio

TENANTS = "0009_tenants.sql"
# In the order their foreign keys need.
TABLES = [
    "model_types",
    "models",
    "jobs",
    "training_batches",
    "model_versions",
    "artifacts",
    "dataset_catalogue",
    "idempotency_keys",
]
OWNED = TABLES[1:]
POINTS = [{"x": float(x), "y": 2.0 * x} for x in range(8)]


@pytest.fixture
async def old_database(servers: Servers, tmp_path: Path) -> AsyncIterator[str]:
    """A database migrated up to, but not including, tenants."""
    async with database_before(servers, tmp_path, TENANTS) as url:
        yield url


async def copy_rows(source_url: str, target_url: str) -> None:
    """Copies every row into the older schema (its columns only), and each dataset's table as
    the service created it then: owned by the login role, with no policy."""
    source = await asyncpg.connect(source_url)
    target = await asyncpg.connect(target_url)
    try:
        async with target.transaction():
            for table in TABLES:
                assert await copy_table(source, target, table), table
            for dataset_id in await source.fetch("SELECT id FROM dataset_catalogue"):
                await copy_dataset_table(source, target, f"d_{dataset_id['id']}")
    finally:
        await source.close()
        await target.close()


async def copy_dataset_table(
    source: asyncpg.Connection, target: asyncpg.Connection, name: str
) -> None:
    columns = await source.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        f'datasets."{name}"',
    )
    defs = [
        f'"{c["attname"]}" {c["type"]}'
        + (" GENERATED ALWAYS AS IDENTITY PRIMARY KEY" if c["attname"] == ROW_ID else "")
        for c in columns
    ]
    await target.execute(f'CREATE TABLE datasets."{name}" ({", ".join(defs)})')
    rows = await source.fetch(f'SELECT * FROM datasets."{name}"')
    await target.copy_records_to_table(name, schema_name="datasets", records=rows)


@pytest.mark.parametrize("seal", ["v1", "v2"])
async def test_an_upgraded_database_belongs_to_the_default_tenant(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    settings: Settings,
    run_worker: Worker,
    database_url: str,
    old_database: str,
    tmp_path: Path,
    seal: str,
) -> None:
    """`v1`: a version sealed before key ids (HMAC over the bytes); `v2`: one sealed by the rule
    of artifact key ids, which bound every artifact to the tenant `default` before tenants."""
    await make_dataset(client, "points", POINTS)
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    body = {"dataset": {"name": "points"}, "features": ["x"]}
    job = await run_job(client, run_worker, "lin", "train", body)
    keyed = await client.post(
        "/models/lin/train", json={"data": POINTS}, headers={"Idempotency-Key": "again"}
    )
    assert keyed.status_code == 202, keyed.text
    raw = await asyncpg.connect(database_url)
    try:
        if seal == "v1":
            data = await raw.fetchval("SELECT data FROM artifacts")
            tag = hmac.new(HMAC_KEY.encode(), data, hashlib.sha256).hexdigest()
            await raw.execute(
                "UPDATE model_versions SET artifact_hmac = $1, artifact_key_id = NULL", tag
            )
    finally:
        await raw.close()
    await copy_rows(database_url, old_database)

    assert TENANTS.removesuffix(".sql") in await migrate(old_database, default_tenant="legacy")

    old = await asyncpg.connect(old_database)
    try:
        for table in OWNED:
            tenants = await old.fetch(f"SELECT DISTINCT tenant FROM {table}")
            assert [r["tenant"] for r in tenants] == ["legacy"], table
        guarded = await old.fetch(
            """
            SELECT pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity, c.relforcerowsecurity,
                   array(SELECT polname FROM pg_policy WHERE polrelid = c.oid) AS policies
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'datasets' AND c.relkind = 'r'
            """
        )
        assert [dict(r) for r in guarded] == [
            {
                "owner": "models_datasets",
                "relrowsecurity": True,
                "relforcerowsecurity": True,
                "policies": ["catalogue_row"],
            }
        ]
    finally:
        await old.close()

    upgraded = msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, url=old_database)
    )
    api, headers = await tenant_app(client_factory, upgraded, tmp_path)
    legacy, other = headers("legacy"), headers("acme")
    answer = await api.post("/models/lin/predict", json={"data": [{"x": 4.0}]}, headers=legacy)
    assert answer.status_code == 200, answer.text
    assert json_of(answer)["predictions"] == pytest.approx([8.0])
    model = json_of(await api.get("/models/lin", headers=legacy))
    assert (model["tenant"], model["current_version"]) == ("legacy", 1)
    assert json_of(await api.get(f"/jobs/{job['id']}", headers=legacy))["tenant"] == "legacy"
    rows = json_of(await api.get("/datasets/points/rows", headers=legacy))
    assert [r["y"] for r in rows["items"]] == [p["y"] for p in POINTS]
    assert json_of(await api.get("/jobs", headers=legacy))["total"] == 2

    for path in ("/models", "/jobs", "/datasets"):
        page = json_of(await api.get(path, headers=other))
        assert (page["total"], page["items"]) == (0, []), path
    for path in ("/models/lin", f"/jobs/{job['id']}", "/datasets/points/rows"):
        assert (await api.get(path, headers=other)).status_code == 404, path
    refused = await api.post("/models/lin/predict", json={"data": [{"x": 4.0}]}, headers=other)
    assert refused.status_code == 404, refused.text
