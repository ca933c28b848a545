"""`ArtifactStore` unpickles only bytes whose HMAC tag and sha256 match what a worker stored for
that very row: bytes written by anyone else, or valid ones copied from another model, version or
tenant, are refused before they are unpickled; tags from before key ids still verify."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx2
import pytest

from service.artifacts import signing
from service.artifacts.store import ArtifactStore, unpickle
from service.repositories.database import Database
from tests.factories import HMAC_KEY, artifact_keys, json_of

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]


class Planted:
    """Unpickling this creates `marker`: proof that the bytes were unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


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
    place = signing.Place("default", 1, 1)
    seal = ArtifactStore(db, artifact_keys()).seal(signing.sha256(data), place)
    assert seal.sha256 == hashlib.sha256(data).hexdigest()
    assert seal.key_id == "k1"
    artifact_keys().verify(data, place, seal)
    with pytest.raises(signing.TamperedArtifact):
        artifact_keys(hmac_key=HMAC_KEY + "-other").verify(data, place, seal)


async def store_as(raw: asyncpg.Connection, model_id: int, data: bytes, seal: signing.Seal) -> None:
    """Writes `data` and `seal` onto version 1 of `model_id`, as someone with table access could."""
    await raw.execute("UPDATE artifacts SET data = $1 WHERE model_id = $2", data, model_id)
    await raw.execute(
        "UPDATE model_versions SET artifact_sha256 = $1, artifact_hmac = $2, artifact_key_id = $3"
        " WHERE model_id = $4 AND version = 1",
        seal.sha256,
        seal.hmac,
        seal.key_id,
        model_id,
    )


@pytest.mark.parametrize(
    "elsewhere",
    [("default", +1, 1), ("default", 0, 2), ("another-tenant", 0, 1)],
    ids=["another model", "another version", "another tenant"],
)
async def test_bytes_signed_for_another_place_are_refused_before_they_are_unpickled(
    client: httpx2.AsyncClient,
    db: Database,
    raw: asyncpg.Connection,
    run_worker: Worker,
    tmp_path: Path,
    elsewhere: tuple[str, int, int],
) -> None:
    model_id = await trained_model_id(client, run_worker, raw)
    marker = tmp_path / "unpickled"
    payload = signing.dumps(Planted(marker))
    keys = artifact_keys()
    tenant, model_offset, version = elsewhere
    place = signing.Place(tenant, model_id + model_offset, version)
    await store_as(raw, model_id, payload, keys.seal(signing.sha256(payload), place))

    with pytest.raises(signing.TamperedArtifact):
        await ArtifactStore(db, keys).load(model_id, 1)
    assert not marker.exists()

    here = signing.Place("default", model_id, 1)
    await store_as(raw, model_id, payload, keys.seal(signing.sha256(payload), here))
    await ArtifactStore(db, keys).load(model_id, 1)  # the same bytes, sealed for this row
    assert marker.exists()


async def test_a_valid_artifact_copied_from_another_model_is_the_tampered_artifact_problem(
    client: httpx2.AsyncClient, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    await trained_model_id(client, run_worker, raw)  # "lin": y = 2x
    body = {"name": "neg", "model_type": "sklearn.linear_model.LinearRegression", "target": "y"}
    assert (await client.post("/models", json=body)).status_code == 201
    rows = {"data": [{"x": float(x), "y": -1.0 * x} for x in range(5)]}
    assert (await client.post("/models/neg/train", json=rows)).status_code == 202
    await run_worker()
    await raw.execute(
        """
        UPDATE artifacts t SET data = s.data FROM artifacts s, models sm, models tm
        WHERE sm.name = 'lin' AND tm.name = 'neg' AND s.model_id = sm.id AND t.model_id = tm.id
        """
    )
    await raw.execute(
        """
        UPDATE model_versions t SET artifact_sha256 = s.artifact_sha256,
            artifact_hmac = s.artifact_hmac, artifact_key_id = s.artifact_key_id
        FROM model_versions s, models sm, models tm
        WHERE sm.name = 'lin' AND tm.name = 'neg' AND s.model_id = sm.id AND t.model_id = tm.id
        """
    )

    one = {"data": [{"x": 1.0}]}
    answer = await client.post("/models/neg/predict", json=one)
    assert answer.status_code == 500
    assert "failed verification" in json_of(answer)["detail"]
    assert (await client.post("/models/lin/predict", json=one)).status_code == 200


OLD_KEY = "the-key-before-rotation-0123456789abcdef0123"


@pytest.mark.parametrize(
    ("signed_by", "loads"),
    [(HMAC_KEY, True), (OLD_KEY, True), ("a-key-this-service-never-had-0123456789", False)],
    ids=["the current key", "an old key", "an unknown key"],
)
async def test_a_v1_artifact_written_before_key_ids_verifies_by_the_old_rule(
    client: httpx2.AsyncClient,
    db: Database,
    raw: asyncpg.Connection,
    run_worker: Worker,
    signed_by: str,
    loads: bool,
) -> None:
    model_id = await trained_model_id(client, run_worker, raw)
    data = await raw.fetchval("SELECT data FROM artifacts WHERE model_id = $1", model_id)
    # As the service stored it before key ids: HMAC-SHA256 over the bytes alone, no key id.
    v1_tag = hmac.new(signed_by.encode(), data, hashlib.sha256).hexdigest()
    await store_as(raw, model_id, data, signing.Seal(signing.sha256(data), v1_tag, None))
    store = ArtifactStore(db, artifact_keys(hmac_keys={"k0": OLD_KEY}))

    if loads:
        loaded = await store.load(model_id, 1)
        assert loaded is not None and loaded.estimator.predict([[4.0]]) == pytest.approx([8.0])
    else:
        with pytest.raises(signing.TamperedArtifact):
            await store.load(model_id, 1)


async def test_a_v2_tag_relabelled_as_v1_does_not_verify(
    client: httpx2.AsyncClient, db: Database, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    """A v1 tag is an HMAC over the stored bytes: storing the v2 message as the "bytes" next to
    its v2 tag must not pass (v2 tags use a key of their own)."""
    model_id = await trained_model_id(client, run_worker, raw)
    row = await raw.fetchrow("SELECT * FROM model_versions WHERE model_id = $1", model_id)
    place = signing.Place("default", model_id, 1)
    message = signing.v2_message(place, row["artifact_sha256"])
    relabelled = signing.Seal(signing.sha256(message), row["artifact_hmac"], None)
    await store_as(raw, model_id, message, relabelled)

    with pytest.raises(signing.TamperedArtifact):
        await ArtifactStore(db, artifact_keys()).load(model_id, 1)
