"""The pool's role: every statement runs as the service's role, and a role above row-level
security is refused rather than used."""

from __future__ import annotations

import msgspec
import pytest

from service.domain.errors import Unavailable
from service.repositories.database import Database
from service.settings import Settings
from tests.factories import ClientFactory

pytestmark = pytest.mark.anyio


async def test_pooled_statements_run_as_the_service_role_below_row_security(db: Database) -> None:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        )
    assert dict(row) == {"name": "models_service", "rolsuper": False, "rolbypassrls": False}


async def test_a_superuser_role_is_refused_instead_of_bypassing_row_security(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The tests' login role is a superuser: used as it is, it would see every tenant's rows.
    database = Database(msgspec.structs.replace(settings.database, role=""))
    await database.start()
    try:
        with pytest.raises(Unavailable):
            async with database.connection() as conn:
                await conn.fetchval("SELECT 1")
    finally:
        await database.close()
    assert "bypasses row-level security" in caplog.text


async def test_the_api_answers_503_while_its_database_role_bypasses_row_security(
    client_factory: ClientFactory, settings: Settings
) -> None:
    database = msgspec.structs.replace(settings.database, role="")
    client = await client_factory(msgspec.structs.replace(settings, database=database))
    response = await client.get("/models")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
