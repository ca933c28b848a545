"""The audit log in PostgreSQL: an entry belongs to its change's transaction, the service role can
only add entries of its own tenant, and the worker's and sweeper's job bookkeeping writes none."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from service.domain.actors import Actor, acting_as
from service.domain.job_runs import JobRuns
from service.domain.sweeps import Sweeps
from service.repositories.database import Database
from service.repositories.models import ModelRepository
from tests.factories import AppClient, json_of

pytestmark = pytest.mark.anyio

DUMMY = "sklearn.dummy.DummyClassifier"
ALICE = Actor("default", "alice", "r-1")


class Boom(Exception):
    pass


async def actions(raw: asyncpg.Connection) -> list[str]:
    rows = await raw.fetch("SELECT action FROM audit_log ORDER BY id")
    return [r["action"] for r in rows]


async def make_iris(client: AppClient) -> None:
    body: dict[str, Any] = {"name": "iris", "model_type": DUMMY, "target": "y"}
    response = await client.post("/models", json=body)
    assert response.status_code == 201, response.text


async def test_an_entry_is_part_of_its_change_and_rolls_back_with_it(
    client: AppClient, db: Database, raw: asyncpg.Connection
) -> None:
    await make_iris(client)
    with acting_as(ALICE), pytest.raises(Boom):
        async with db.transaction() as conn:
            repo = ModelRepository(conn)
            model_id = await repo.lock("iris")
            assert model_id is not None
            await repo.update_fields(model_id, {"title": "changed"})
            inside = await conn.fetchval("SELECT count(*) FROM audit_log")
            assert inside == 2  # model.created, and this change's own entry
            raise Boom

    assert await actions(raw) == ["model.created"]
    assert await raw.fetchval("SELECT title FROM models WHERE name = 'iris'") is None


async def test_the_service_role_cannot_change_or_remove_entries(
    client: AppClient, db: Database, raw: asyncpg.Connection
) -> None:
    await make_iris(client)
    with acting_as(ALICE):
        for statement in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with db.transaction() as conn:
                    await conn.execute(statement)
    assert await actions(raw) == ["model.created"]
    assert await raw.fetchval("SELECT actor FROM audit_log") == "anonymous"


async def test_the_service_role_cannot_write_an_entry_for_another_tenant(
    db: Database, raw: asyncpg.Connection
) -> None:
    with acting_as(Actor("acme", "mallory")), pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO audit_log (tenant, action, resource) VALUES ('globex', 'x', 'y')"
            )
    assert await actions(raw) == []


async def test_the_maintenance_role_cannot_read_entries(client: AppClient, db: Database) -> None:
    await make_iris(client)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with db.maintenance() as conn:
            await conn.fetch("SELECT * FROM audit_log")


async def test_job_bookkeeping_by_the_worker_and_the_sweeper_writes_no_entry(
    client: AppClient, db: Database, raw: asyncpg.Connection
) -> None:
    await make_iris(client)
    response = await client.post("/models/iris/train", json={"data": [{"x": 1, "y": "a"}]})
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(json_of(response)["id"])
    runs = JobRuns(db)
    actor = await runs.actor_of(job_id)
    assert actor is not None
    with acting_as(actor):
        assert await runs.claim(job_id, "w1") is not None
        assert await runs.beat(job_id)
        await runs.progress(job_id, 0.5)
        await runs.release(job_id)
        assert await runs.claim(job_id, "w1") is not None
    # As `models_maintenance`, which may not write an entry: these must not try to.
    abandoned = await Sweeps(db).recover_abandoned(stale_after_seconds=0, max_tries=1)
    assert [j.id for j in abandoned.failed] == [job_id]
    assert await raw.fetchval("SELECT status FROM jobs") == "failed"
    assert await actions(raw) == ["model.created", "job.created"]


async def test_a_change_made_with_no_actor_is_by_system(
    client: AppClient, raw: asyncpg.Connection
) -> None:
    await make_iris(client)
    await raw.execute("UPDATE models SET description = 'by hand' WHERE name = 'iris'")
    entry = await raw.fetchrow(
        "SELECT actor, request_id, tenant, after::text FROM audit_log"
        " WHERE action = 'model.updated'"
    )
    assert tuple(entry) == ("system", None, "default", '{"description": "by hand"}')
