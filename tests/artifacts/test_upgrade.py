"""A version stored before artifact key ids, by the old rule (HMAC over the bytes alone), still
predicts after the migration that introduced them: the migration leaves it marked as v1."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx2
import msgspec
import pytest

from service.repositories.migrator import migrate
from service.settings import Settings
from tests.factories import (
    HMAC_KEY,
    ClientFactory,
    Servers,
    Worker,
    json_of,
    make_model,
    run_job,
)
from tests.old_schemas import copy_table, database_before

pytestmark = pytest.mark.anyio

KEY_IDS = "0008_artifact_key_ids.sql"
# In the order their foreign keys need; these hold everything a version needs to be served.
TABLES = ["model_types", "models", "jobs", "training_batches", "model_versions", "artifacts"]


@pytest.fixture
async def old_database(servers: Servers, tmp_path: Path) -> AsyncIterator[str]:
    """A database migrated up to, but not including, artifact key ids."""
    async with database_before(servers, tmp_path, KEY_IDS) as url:
        yield url


async def copy_rows(source_url: str, target_url: str) -> None:
    """Copies the served tables, in the columns the target has (its older schema)."""
    source = await asyncpg.connect(source_url)
    target = await asyncpg.connect(target_url)
    try:
        async with target.transaction():
            await target.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in TABLES:
                await copy_table(source, target, table)
    finally:
        await source.close()
        await target.close()


async def test_a_version_signed_before_key_ids_still_predicts_after_the_upgrade(
    client: httpx2.AsyncClient,
    client_factory: ClientFactory,
    settings: Settings,
    run_worker: Worker,
    database_url: str,
    old_database: str,
) -> None:
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    rows = {"data": [{"x": float(x), "y": 2.0 * x} for x in range(5)]}
    await run_job(client, run_worker, "lin", "train", rows)
    conn = await asyncpg.connect(database_url)
    try:  # as the service signed it before key ids
        data = await conn.fetchval("SELECT data FROM artifacts")
        old_tag = hmac.new(HMAC_KEY.encode(), data, hashlib.sha256).hexdigest()
        await conn.execute("UPDATE model_versions SET artifact_hmac = $1", old_tag)
    finally:
        await conn.close()
    await copy_rows(database_url, old_database)

    assert KEY_IDS.removesuffix(".sql") in await migrate(old_database)

    conn = await asyncpg.connect(old_database)
    try:
        assert await conn.fetchval("SELECT artifact_key_id FROM model_versions") is None
    finally:
        await conn.close()
    upgraded = msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, url=old_database)
    )
    answer = await (await client_factory(upgraded)).post(
        "/models/lin/predict", json={"data": [{"x": 4.0}]}
    )
    assert answer.status_code == 200, answer.text
    assert json_of(answer)["predictions"] == pytest.approx([8.0])
