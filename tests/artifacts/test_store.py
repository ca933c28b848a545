"""`ArtifactStore` unpickles only bytes whose HMAC tag and sha256 match what a worker stored:
bytes written by anyone else are refused before they are unpickled."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx2
import pytest

from service.artifacts import signing
from service.artifacts.store import ArtifactStore, unpickle
from service.repositories.database import Database
from service.settings import Settings
from tests.factories import HMAC_KEY, artifact_keys

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]


class Planted:
    """Unpickling this creates `marker`: proof that the bytes were unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database)
    await database.start()
    yield database
    await database.close()


@pytest.fixture
async def raw(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def trained_model_id(
    client: httpx2.AsyncClient, run_worker: Worker, raw: asyncpg.Connection
) -> int:
    body = {"name": "lin", "model_type": "sklearn.linear_model.LinearRegression", "target": "y"}
    assert (await client.post("/models", json=body)).status_code == 201
    rows = {"data": [{"x": float(x), "y": 2.0 * x} for x in range(5)]}
    assert (await client.post("/models/lin/train", json=rows)).status_code == 202
    await run_worker()
    model_id: int = await raw.fetchval("SELECT id FROM models WHERE name = 'lin'")
    return model_id


async def test_a_stored_artifact_loads_as_the_estimator_it_was(
    client: httpx2.AsyncClient, db: Database, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    model_id = await trained_model_id(client, run_worker, raw)
    loaded = await ArtifactStore(db, artifact_keys()).load(model_id, 1)
    assert loaded is not None and loaded.version.features == ["x"]
    assert loaded.estimator.predict([[4.0]]) == pytest.approx([8.0])
    assert await ArtifactStore(db, artifact_keys()).load(model_id, 2) is None


@pytest.mark.parametrize("forged", ["bytes only", "bytes and sha256"])
async def test_tampered_bytes_are_refused_before_they_are_unpickled(
    client: httpx2.AsyncClient,
    db: Database,
    raw: asyncpg.Connection,
    run_worker: Worker,
    tmp_path: Path,
    forged: str,
) -> None:
    model_id = await trained_model_id(client, run_worker, raw)
    marker = tmp_path / "unpickled"
    payload = signing.dumps(Planted(marker))
    await raw.execute("UPDATE artifacts SET data = $1 WHERE model_id = $2", payload, model_id)
    if forged == "bytes and sha256":  # someone who can write the table, but has no key
        digest = hashlib.sha256(payload).hexdigest()
        await raw.execute(
            "UPDATE model_versions SET artifact_sha256 = $1 WHERE model_id = $2", digest, model_id
        )
    store = ArtifactStore(db, artifact_keys())

    with pytest.raises(signing.TamperedArtifact):
        await store.load(model_id, 1)
    with pytest.raises(signing.TamperedArtifact):
        await store.fetch(model_id, 1)
    assert not marker.exists()

    unpickle(payload)  # what the store just refused to do
    assert marker.exists()


async def test_a_seal_verifies_only_under_its_own_key(db: Database) -> None:
    data = signing.dumps({"weights": [1, 2, 3]})
    place = signing.Place(signing.DEFAULT_TENANT, 1, 1)
    seal = ArtifactStore(db, artifact_keys()).seal(signing.sha256(data), place)
    assert seal.sha256 == hashlib.sha256(data).hexdigest()
    assert seal.key_id == "k1"
    artifact_keys().verify(data, place, seal)
    with pytest.raises(signing.TamperedArtifact):
        artifact_keys(hmac_key=HMAC_KEY + "-other").verify(data, place, seal)
