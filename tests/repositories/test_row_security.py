"""Row-level security, proven with queries that deliberately forget their tenant: through the
service's own pool (which runs as `models_service`), an unfiltered `SELECT` shows the acting
tenant's rows only, another tenant's dataset table is empty even when named directly, a row
written for another tenant is refused, and with no actor every owned table is empty."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest

from service.domain.actors import Actor, acting_as
from service.domain.datasets import Datasets
from service.repositories.database import Database
from service.repositories.migrator import migrate
from service.schemas.datasets import DatasetCreate, RowsAppend
from service.settings import Settings
from tests.factories import (
    LOGREG,
    ClientFactory,
    Servers,
    Worker,
    json_of,
    tenant_app,
    with_database,
)

pytestmark = pytest.mark.anyio

A, B = "acme", "globex"
OWNED = [
    "models",
    "jobs",
    "model_versions",
    "artifacts",
    "training_batches",
    "dataset_catalogue",
    "idempotency_keys",
]
VIEWS = ["models_view"]
DUMMY = "sklearn.dummy.DummyClassifier"


@pytest.fixture
async def dataset_ids(
    client_factory: ClientFactory,
    settings: Settings,
    tmp_path: Path,
    run_worker: Worker,
    raw: asyncpg.Connection,
) -> dict[str, int]:
    """Each tenant with a row in every owned table: a dataset, a model trained (by the worker)
    under an Idempotency-Key; returns each tenant's dataset id."""
    client, headers = await tenant_app(client_factory, settings, tmp_path)
    ids = {}
    for tenant in (A, B):
        auth = headers(tenant)
        data = [{"id": i, "note": f"{tenant} {i}"} for i in range(5)]
        created = await client.post("/datasets", json={"name": "staff", "data": data}, headers=auth)
        assert created.status_code == 201, created.text
        ids[tenant] = await raw.fetchval(
            "SELECT id FROM dataset_catalogue WHERE tenant = $1", tenant
        )
        model = {"name": "churn", "model_type": DUMMY, "target": "species"}
        assert (await client.post("/models", json=model, headers=auth)).status_code == 201
        keyed = {**auth, "Idempotency-Key": "first"}
        train = {"data": [{"x": float(i), "species": f"{tenant} {i % 2}"} for i in range(6)]}
        response = await client.post("/models/churn/train", json=train, headers=keyed)
        assert response.status_code == 202, response.text
    await run_worker()
    for tenant in (A, B):
        jobs = json_of(await client.get("/jobs", headers=headers(tenant)))
        assert [j["status"] for j in jobs["items"]] == ["succeeded"], jobs
    return ids


async def tenants_in(db: Database, table: str) -> list[str]:
    """The tenant of every row the current actor's unfiltered query returns."""
    async with db.transaction() as conn:
        return [r["tenant"] for r in await conn.fetch(f"SELECT tenant FROM {table}")]


async def test_an_unfiltered_query_returns_only_the_acting_tenants_rows(
    db: Database, raw: asyncpg.Connection, dataset_ids: dict[str, int]
) -> None:
    for table in OWNED + VIEWS:
        for tenant in (A, B):
            stored = await raw.fetchval(f"SELECT count(*) FROM {table} WHERE tenant = $1", tenant)
            assert stored > 0, table
            with acting_as(Actor(tenant, "x")):
                assert await tenants_in(db, table) == [tenant] * stored, table


async def test_another_tenants_dataset_table_is_empty_even_when_named_directly(
    db: Database, dataset_ids: dict[str, int]
) -> None:
    theirs = f'datasets."d_{dataset_ids[B]}"'
    mine = f'datasets."d_{dataset_ids[A]}"'
    with acting_as(Actor(A, "x")):
        async with db.transaction() as conn:
            assert [r["note"] for r in await conn.fetch(f"SELECT note FROM {mine}")] == [
                f"{A} {i}" for i in range(5)
            ]
            assert await conn.fetch(f"SELECT * FROM {theirs}") == []
            assert await conn.execute(f"UPDATE {theirs} SET note = 'acme was here'") == "UPDATE 0"
            assert await conn.execute(f"DELETE FROM {theirs}") == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with db.transaction() as conn:
                await conn.execute(f"INSERT INTO {theirs} (id, note) VALUES (99, 'planted')")
    with acting_as(Actor(B, "x")):
        async with db.transaction() as conn:
            assert await conn.fetchval(f"SELECT count(*) FROM {theirs}") == 5


async def test_a_row_written_for_another_tenant_is_refused(
    db: Database, raw: asyncpg.Connection, dataset_ids: dict[str, int]
) -> None:
    insert = (
        "INSERT INTO models (name, model_type, created_by, tenant)"
        f" VALUES ('planted', '{LOGREG}', 'x', 'globex')"
    )
    statements = [insert, "UPDATE models SET tenant = 'globex'"]
    with acting_as(Actor(A, "x")):
        for statement in statements:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
                async with db.transaction() as conn:
                    await conn.execute(statement)
        async with db.transaction() as conn:  # an unfiltered change reaches acme's rows only
            assert await conn.execute("UPDATE models SET title = 'acme was here'") == "UPDATE 1"
            assert await conn.execute("DELETE FROM idempotency_keys") == "DELETE 1"
    assert await raw.fetchval("SELECT title FROM models WHERE tenant = 'globex'") is None
    assert await raw.fetchval("SELECT count(*) FROM idempotency_keys WHERE tenant = 'globex'") == 1
    assert await raw.fetchval("SELECT count(*) FROM models WHERE name = 'planted'") == 0


async def test_with_no_actor_owned_tables_show_and_take_nothing(
    db: Database, dataset_ids: dict[str, int]
) -> None:
    with acting_as(None):
        await no_rows_without_an_actor(db, dataset_ids)


async def no_rows_without_an_actor(db: Database, dataset_ids: dict[str, int]) -> None:
    for table in OWNED + VIEWS:
        async with db.connection() as conn:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    for tenant in (A, B):
        async with db.connection() as conn:
            assert (
                await conn.fetchval(f'SELECT count(*) FROM datasets."d_{dataset_ids[tenant]}"') == 0
            )
    with pytest.raises(asyncpg.PostgresError):  # no tenant to default to, and none to match
        async with db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO models (name, model_type, created_by) VALUES ('x', '{LOGREG}', 'x')"
            )


async def test_the_pool_runs_as_a_role_that_cannot_bypass_row_security(db: Database) -> None:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        )
    assert dict(row) == {"name": "models_service", "rolsuper": False, "rolbypassrls": False}


async def test_every_table_with_a_tenant_column_forces_row_security(
    raw: asyncpg.Connection,
) -> None:
    """A table added later with a `tenant` column cannot forget its policy."""
    rows = await raw.fetch(
        """
        SELECT c.relname, c.relkind::text AS relkind, c.relrowsecurity, c.relforcerowsecurity,
               coalesce(c.reloptions, '{}') AS options,
               EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid
                       AND 'models_service'::regrole = ANY (p.polroles)) AS has_policy
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
        """
    )
    tables = {r["relname"]: r for r in rows if r["relkind"] in ("r", "p")}
    assert set(OWNED) <= set(tables)
    loose = [
        name
        for name, r in tables.items()
        if not (r["relrowsecurity"] and r["relforcerowsecurity"] and r["has_policy"])
    ]
    assert loose == []
    views = {r["relname"]: r for r in rows if r["relkind"] != "r"}
    assert set(views) == set(VIEWS)
    # A view reads its tables as its owner unless it is security_invoker; a materialized view
    # cannot be one, so none may hold tenants' rows.
    assert all("security_invoker=true" in r["options"] for r in views.values())


async def test_dataset_tables_are_held_to_their_policy_by_an_owner_nobody_acts_as(
    raw: asyncpg.Connection, dataset_ids: dict[str, int]
) -> None:
    rows = await raw.fetch(
        """
        SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity,
               c.relforcerowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'datasets' AND c.relkind = 'r'
        """
    )
    assert {r["relname"] for r in rows} == {f"d_{i}" for i in dataset_ids.values()}
    assert {(r["owner"], r["relrowsecurity"], r["relforcerowsecurity"]) for r in rows} == {
        ("models_datasets", True, True)
    }
    members = await raw.fetch(
        "SELECT member::regrole::text AS member FROM pg_auth_members"
        " WHERE roleid = 'models_datasets'::regrole"
    )
    assert [r["member"] for r in members] == []


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        "DROP POLICY catalogue_row ON {table}",
        "DROP TABLE {table}",
        "TRUNCATE {table}",
        "SELECT drop_dataset_table({id})",
        "SELECT guard_dataset_table({id})",
        "ALTER TABLE {table} OWNER TO models_service",
    ],
)
async def test_a_statement_of_the_service_cannot_lift_a_dataset_tables_guard(
    db: Database, dataset_ids: dict[str, int], statement: str
) -> None:
    """Not even one that sets out to: the service's role does not own the tables."""
    theirs = dataset_ids[B]
    table = f'datasets."d_{theirs}"'
    with acting_as(Actor(A, "x")), pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with db.transaction() as conn:
            await conn.execute(statement.format(table=table, id=theirs))
    with acting_as(Actor(B, "x")):
        async with db.transaction() as conn:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 5


async def test_maintenance_sees_every_tenants_jobs_but_no_models_or_datasets(
    db: Database, dataset_ids: dict[str, int]
) -> None:
    async with db.maintenance() as conn:
        assert sorted({r["tenant"] for r in await conn.fetch("SELECT tenant FROM jobs")}) == [A, B]
    for table in (
        "models",
        "models_view",
        "artifacts",
        "dataset_catalogue",
        f'datasets."d_{dataset_ids[A]}"',
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with db.maintenance() as conn:
                await conn.fetch(f"SELECT * FROM {table}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with db.maintenance() as conn:
            await conn.execute("DELETE FROM jobs")


@pytest.fixture
async def owned_by_a_plain_role(servers: Servers, template_db: str) -> AsyncIterator[str]:
    """A database that a role which is no superuser owns and migrates, and whose login is also
    the service's (a member of its roles, as config.toml's `database.role` describes)."""
    role, name = f"owner_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(servers.postgres)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN CREATEROLE')
        await admin.execute(f'GRANT models_service, models_maintenance TO "{role}"')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
        parts = urlsplit(with_database(servers.postgres, name))
        url = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))
        await migrate(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_dataset_tables_are_guarded_when_the_role_that_migrates_is_no_superuser(
    settings: Settings, owned_by_a_plain_role: str
) -> None:
    db = Database(msgspec.structs.replace(settings.database, url=owned_by_a_plain_role))
    await db.start()
    try:
        datasets, ids = Datasets(db), {}
        for tenant in (A, B):
            with acting_as(Actor(tenant, "x")):
                data: list[dict[str, str | int | float | bool | None]] = [
                    {"id": i, "note": f"{tenant} {i}"} for i in range(3)
                ]
                await datasets.create(DatasetCreate(name="staff", data=data), "x")
                await datasets.append("staff", RowsAppend(data=[{"id": 9, "note": "more"}]))
                async with db.transaction() as conn:
                    ids[tenant] = await conn.fetchval("SELECT id FROM dataset_catalogue")
        theirs = ids[A]
        with acting_as(Actor(B, "x")):
            for statement in (
                f"SELECT drop_dataset_table({theirs})",
                f"SELECT guard_dataset_table({theirs})",
                f'ALTER TABLE datasets."d_{theirs}" NO FORCE ROW LEVEL SECURITY',
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    async with db.transaction() as conn:
                        await conn.execute(statement)
            async with db.transaction() as conn:
                assert await conn.fetchval(f'SELECT count(*) FROM datasets."d_{theirs}"') == 0
        with acting_as(Actor(A, "x")):
            async with db.transaction() as conn:
                assert await conn.fetchval(f'SELECT count(*) FROM datasets."d_{theirs}"') == 4
            await datasets.delete("staff")
            async with db.transaction() as conn:
                assert await conn.fetchval(f"SELECT to_regclass('datasets.\"d_{theirs}\"')") is None
        with acting_as(Actor(B, "x")):
            async with db.transaction() as conn:
                assert await conn.fetchval(f'SELECT count(*) FROM datasets."d_{ids[B]}"') == 4
    finally:
        await db.close()
